"""One phase of the update on every replica of a tf.distribute strategy (sac/distribute.py makes
the strategy; sac/agent.py runs the phases in order and applies their gradients).

`batch` is this worker's share of the global batch; each replica takes its rows, and draws its
rows of the global batch's noise, so that every example sees the same noise as on one device. The
losses are normalised by the global batch, the gradients and metrics summed over the replicas (one
all-reduce per phase), and the caller applies them once to the mirrored variables.

XLA cannot compile a step whose variables live on several devices (keras-team/keras#19005): with
jit_compile each replica's phase is compiled as a pure function of that replica's own variable
values, passed in as inputs and read through a Keras StatelessScope; it touches no variable.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from sac.distribute import Replication

# phase(values, loss_divisor, batch, noise) -> gradients and metrics (sac/agent.py's _critic_phase,
# _actor_phase); `values` maps variable groups to the tensors standing for them, or is None.
Phase = Callable[..., tuple]


class ReplicatedPhases:
    def __init__(self, replication: Replication, variables: Callable[[], dict[str, list]], jit_compile: bool) -> None:
        """`variables()`: the groups of variables a phase reads (the agent's state groups)."""
        self.replication = replication
        self._variables = variables
        self._jit_compile = jit_compile
        self._compiled: dict[tuple, Any] = {}

    def run(self, phase: Phase, batch: dict[str, tf.Tensor], noise: Callable[[int], tf.Tensor],
            loss_divisor: Callable[[int], int]) -> tuple:
        """Run `phase` on every replica; one copy of its outputs summed over the replicas.
        `noise(global_rows)` draws the global batch's noise; `loss_divisor(global_rows)` is what
        the replicas' loss sums are divided by."""
        rep, strategy = self.replication, self.replication.strategy
        global_batch = int(batch["action"].shape[0]) * rep.num_workers
        rows = global_batch // rep.num_replicas
        divisor = loss_divisor(global_batch)

        def on_replica(batch: dict[str, tf.Tensor]) -> tuple:
            context = tf.distribute.get_replica_context()
            replica = context.replica_id_in_sync_group
            local = replica - rep.worker_index * rep.local_replicas
            own_rows = tf.nest.map_structure(lambda a: a[local * rows:(local + 1) * rows], batch)
            own_noise = noise(global_batch)[replica * rows:(replica + 1) * rows]
            return context.all_reduce(tf.distribute.ReduceOp.SUM, self._phase(phase, divisor, own_rows, own_noise))

        summed = strategy.run(on_replica, args=(batch,))
        return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], summed)

    def _phase(self, phase: Phase, divisor: int, *args: tf.Tensor) -> tuple:
        if not self._jit_compile:
            return phase(None, divisor, *args)
        values = {name: [tf.convert_to_tensor(v) for v in variables] for name, variables in self._variables().items()}
        return self._compiled_phase(phase, divisor)(values, *args)

    def _compiled_phase(self, phase: Phase, divisor: int) -> Any:
        key = (phase.__name__, divisor)
        if key not in self._compiled:
            groups = self._variables()

            def pure(values: dict[str, list], *args: tf.Tensor) -> tuple:
                mapping = [(v, x) for name in groups for v, x in zip(groups[name], values[name])]
                with keras.StatelessScope(state_mapping=mapping):
                    return phase(values, divisor, *args)

            self._compiled[key] = tf.function(pure, jit_compile=True)
        return self._compiled[key]
