"""The SAC agent: networks, optimizers, its policy, and the one compiled training call.

`train_and_act` makes K gradient steps on the critics, the actor and the temperature (paper,
Algorithm 1), then samples the next actions from the updated policy, all in one `tf.function`
(with XLA by default): the training loop's one call per environment step. With a recurrent actor or
critic (actor_network / critic_network "lstm" or "gru") the update works on sequences
(ReplayBuffer.sample_sequence_stack) and acting carries the policy's recurrent state. Randomness comes from
stateless random ops keyed by (seed, counter): the counters are variables, so the agent's whole
random state is part of its weights, and the same seed gives the same run.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from sac import losses, seeding
from sac.distribute import Replication
from sac.networks import build_actor, build_critic
from sac.noise import seed_pair, standard_normal_draws
from sac.policy import Policy


@dataclass(frozen=True)
class SACSettings:
    """The hyperparameters the update uses (see sac/config.py for their sources)."""

    gamma: float = 0.99
    tau: float = 0.005
    reward_scale: float = 1.0
    target_entropy: float = -0.5
    learn_alpha: bool = True
    initial_alpha: float = 1.0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4


def default_target_entropy(action_dim: int) -> float:
    """-dim(A)/2, TF-Agents' default; the paper uses -dim(A) (Appendix D)."""
    return -0.5 * action_dim


# What one update reads of a batch: transitions (feed-forward networks) or sequences (any recurrent one).
TRANSITION_KEYS = ("obs", "action", "reward", "next_obs", "terminated")
SEQUENCE_KEYS = ("obs", "prev_action", "action", "reward", "terminated", "mask", "warm")


class SACAgent:
    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int], settings: SACSettings, seed: int, jit_compile: bool = True,
                 replication: Replication | None = None, actor_network: str = "mlp", critic_network: str = "mlp",
                 rnn_units: int = 0, burn_in: int = 0) -> None:
        self.settings = settings
        self.obs_dim = int(obs_dim)
        self.action_dim = int(np.asarray(action_low).shape[0])
        self.networks = {"actor": actor_network, "critic": critic_network, "rnn_units": int(rnn_units)}
        # Any recurrent network makes the update work on sequences (an MLP then acts per step in them).
        self.sequences = actor_network != "mlp" or critic_network != "mlp"
        self.batch_keys = SEQUENCE_KEYS if self.sequences else TRANSITION_KEYS
        self.burn_in = int(burn_in)
        self.replication = replication or Replication(None)
        strategy = self.replication.strategy
        # Under a tf.distribute strategy every variable (weights, optimizer slots, counters) is created
        # in its scope, so that each replica holds a mirrored copy.
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self._build(action_low, action_high, hidden_sizes, seed, jit_compile and strategy is None, jit_compile)
        if strategy is None:
            self._train_and_act_fn = tf.function(self._train_and_act, jit_compile=jit_compile)
        else:
            # XLA cannot compile a step whose variables live on several devices (keras-team/keras#19005):
            # the distributed step is a graph whose per-replica phases are XLA-compiled on values
            # (_replica_phase; README "Multi-GPU, TPU and multi-machine").
            self._update_step = self._distributed_update
            self._train_and_act_fn = tf.function(self._train_and_act)
            self._compiled_phases: dict[tuple, object] = {}
            self._compile_replicas = jit_compile
        self._train_and_act_calls: dict[tuple, object] = {}

    def _build(self, action_low: np.ndarray, action_high: np.ndarray, hidden_sizes: Sequence[int], seed: int,
               jit_compile: bool, xla_noise: bool) -> None:
        settings = self.settings
        self._draw = standard_normal_draws(xla_noise)
        # Independent seeds for the actor's and the critics' initial weights and for the two noise streams.
        actor_seed, critic_seed, update_key, act_key = seeding.derive(seed, 4)
        nets = self.networks
        self.actor = build_actor(self.obs_dim, action_low, action_high, hidden_sizes, seed=actor_seed,
                                 network=nets["actor"], rnn_units=nets["rnn_units"])
        self.critic = build_critic(self.obs_dim, self.action_dim, hidden_sizes, seed=critic_seed, name="critic",
                                   network=nets["critic"], rnn_units=nets["rnn_units"])
        self.target_critic = build_critic(self.obs_dim, self.action_dim, hidden_sizes, name="target_critic",
                                          network=nets["critic"], rnn_units=nets["rnn_units"])
        self.target_critic.set_weights(self.critic.get_weights())
        self.log_alpha = keras.Variable(math.log(settings.initial_alpha), dtype="float32", name="log_alpha",
                                        trainable=settings.learn_alpha)

        self.actor_optimizer = keras.optimizers.Adam(settings.actor_lr)
        self.critic_optimizer = keras.optimizers.Adam(settings.critic_lr)
        self.alpha_optimizer = keras.optimizers.Adam(settings.alpha_lr)
        # Build the optimizer slots now, outside any tf.function (needed under tf.distribute too).
        self.actor_optimizer.build(self.actor.trainable_variables)
        self.critic_optimizer.build(self.critic.trainable_variables)
        self.alpha_optimizer.build([self.log_alpha])

        # Two random streams (sac/noise.py): (update_key, update_counter) for the updates, the
        # policy's (act_key, act_counter) for acting. Variables, not constants, so that a restored
        # training state carries its own noise streams.
        self._update_key = tf.Variable(update_key, dtype=tf.int64, trainable=False, name="update_key")
        self.update_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="update_counter")
        # Acting (exploration, evaluation) goes through the one policy API; its noise stream is (act_key, n).
        self.policy = Policy(self.actor, self.obs_dim, seed=act_key, jit_compile=jit_compile, xla_noise=xla_noise)
        self._update_step = self._update

    # --- The whole learning state, as numpy arrays (sac/training_state.py saves it) --------------------
    def _state_variables(self) -> dict[str, list]:
        return {
            "actor": self.actor.weights, "critic": self.critic.weights, "target_critic": self.target_critic.weights,
            "actor_optimizer": self.actor_optimizer.variables, "critic_optimizer": self.critic_optimizer.variables,
            "alpha_optimizer": self.alpha_optimizer.variables,
            "scalars": [self.log_alpha, self.update_counter, self.policy.noise_counter, self._update_key,
                        self.policy.noise_key],
        }

    def get_state(self) -> dict[str, list[np.ndarray]]:
        """Every variable the update reads or writes: weights, target weights, Adam's step counts and
        moments, log(alpha) and the noise counters. Explicit lists, not tf.train.Checkpoint: Keras 3
        checkpoints can silently miss layers (keras-team/keras#19425); tests compare every variable."""
        return {group: [np.array(v.numpy()) for v in variables] for group, variables in self._state_variables().items()}

    def set_state(self, state: dict[str, list[np.ndarray]]) -> None:
        """Restore `get_state()`'s output; ValueError naming the first variable that does not fit."""
        groups = self._state_variables()
        if set(state) != set(groups):
            raise ValueError(f"agent state has parts {sorted(state)}, expected {sorted(groups)}")
        for group, variables in groups.items():
            values = state[group]
            if len(values) != len(variables):
                raise ValueError(f"{group}: {len(values)} arrays for {len(variables)} variables")
            for variable, value in zip(variables, values):
                if tuple(np.shape(value)) != tuple(variable.shape):
                    raise ValueError(f"{group}/{variable.name}: shape {np.shape(value)} != {tuple(variable.shape)}")
        for group, variables in groups.items():
            for variable, value in zip(variables, state[group]):
                variable.assign(np.asarray(value, dtype=np.asarray(variable.numpy()).dtype))

    def nonfinite_variables(self) -> list[str]:
        """Names of the variables holding NaN or inf (none, in a healthy run)."""
        bad = []
        for group, variables in self._state_variables().items():
            for variable in variables:
                value = np.asarray(variable.numpy())
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    bad.append(f"{group}/{variable.name}")
        return bad

    @property
    def alpha(self) -> tf.Tensor:
        return tf.exp(tf.convert_to_tensor(self.log_alpha))

    def _noise(self, key: tf.Tensor, counter: tf.Variable, stream: int, rows: tuple[int, ...]) -> tf.Tensor:
        """N(0, 1) draws of shape rows + (action_dim,): draw `stream` of the update stream (sac/noise.py)."""
        return self._draw(tuple(rows) + (self.action_dim,), seed_pair(key, counter, stream))

    def _rows(self, batch: dict[str, tf.Tensor], rows: int | None = None) -> tuple[int, ...]:
        """The shape of a batch's noise rows (without the action axis): [B] for transitions, [B, T]
        for sequences (one draw per step); `rows` replaces B (the global batch of a distributed one)."""
        shape = tuple(int(d) for d in batch["action"].shape[:-1])
        return shape if rows is None else (rows,) + shape[1:]

    def _loss_slots(self, batch: dict[str, tf.Tensor], rows: int) -> int:
        """What the loss sums are divided by: the batch size, or for sequences its step slots (B * T)."""
        return rows * int(batch["action"].shape[1]) if self.sequences else rows

    def _per_valid_step(self, grads: object, metrics: dict[str, tf.Tensor]) -> tuple[object, dict[str, tf.Tensor]]:
        """Sequences: turn sums over the slots into means over the steps that count (losses.batch_mean):
        gradients and metrics are divided by the fraction of slots that count, summed over replicas."""
        if not self.sequences:
            return grads, metrics
        metrics = dict(metrics)
        scale = 1.0 / tf.maximum(metrics.pop("valid_fraction"), 1e-8)
        return tf.nest.map_structure(lambda g: g * scale, grads), {k: v * scale for k, v in metrics.items()}

    # --- The update (Algorithm 1, one gradient step) -------------------------------------------------
    # Each phase's loss and gradients are computed by one method, used by both the single-device
    # update and the distributed one (where each replica computes them on its rows of the batch,
    # normalised by the global batch so that the summed gradients are those of the global mean).

    def _critic_gradients(self, batch: dict[str, tf.Tensor], next_noise: tf.Tensor, alpha: tf.Tensor,
                          global_batch: int | None = None, wrt: list | None = None) -> tuple[list, dict[str, tf.Tensor]]:
        """Critics: regress both Q-functions on the soft Bellman target (eqs. 5-7). Gradients with
        respect to the critic's variables, or to `wrt`, the values standing for them (see
        _replica_phase)."""
        if self.sequences:
            return self._sequence_critic_gradients(batch, next_noise, alpha, global_batch, wrt)
        s = self.settings
        obs, action, reward, next_obs, terminated = (batch[k] for k in TRANSITION_KEYS)
        next_action, next_log_prob = self.actor.sample(next_obs, next_noise)
        next_q1, next_q2 = self.target_critic(next_obs, next_action)
        target = tf.stop_gradient(losses.td_target(reward, terminated, next_q1, next_q2, next_log_prob,
                                                   alpha, s.gamma, s.reward_scale))
        critic_vars = self.critic.trainable_variables if wrt is None else wrt
        with tf.GradientTape() as tape:
            if wrt is not None:
                tape.watch(wrt)
            q1, q2 = self.critic(obs, action)
            loss_c, metrics = losses.critic_loss(q1, q2, target, global_batch)
        return tape.gradient(loss_c, critic_vars), metrics

    def _actor_gradients(self, batch: dict[str, tf.Tensor], noise: tf.Tensor, alpha: tf.Tensor,
                         global_batch: int | None = None, wrt: list | None = None
                         ) -> tuple[list, tf.Tensor, dict[str, tf.Tensor]]:
        """Actor: minimise alpha * log pi - min Q through a reparameterised sample (eq. 12)."""
        if self.sequences:
            return self._sequence_actor_gradients(batch, noise, alpha, global_batch, wrt)
        obs = batch["obs"]
        actor_vars = self.actor.trainable_variables if wrt is None else wrt
        with tf.GradientTape() as tape:
            if wrt is not None:
                tape.watch(wrt)
            new_action, log_prob = self.actor.sample(obs, noise)
            q1_pi, q2_pi = self.critic(obs, new_action)
            loss_a, metrics = losses.actor_loss(log_prob, q1_pi, q2_pi, alpha, global_batch)
        return tape.gradient(loss_a, actor_vars), log_prob, metrics

    def _alpha_gradient(self, log_prob: tf.Tensor, global_batch: int | None = None, wrt: tf.Tensor | None = None,
                        mask: tf.Tensor | None = None) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Temperature: move log(alpha) so the policy's entropy tracks the target (eq. 18). It reuses
        the log-probs of the actor step, as SB3 and CleanRL do (TF-Agents samples the updated actor
        again; the difference is one actor step's change to the entropy estimate)."""
        log_alpha = self.log_alpha if wrt is None else wrt
        with tf.GradientTape() as tape:
            if wrt is not None:
                tape.watch(wrt)
            loss_t, metrics = losses.alpha_loss(log_alpha, log_prob, self.settings.target_entropy, global_batch, mask)
        return tape.gradient(loss_t, log_alpha), metrics

    # --- The same three phases on sequences (recurrent networks) --------------------------------------
    # obs / prev_action hold T + 1 steps (the last real one followed by its next observation), so one
    # pass of a network over them gives each step's features and, one index later, its successor's.
    # The state starts at zero: a sequence begins at its episode's start or is warmed up by burn-in.

    def _encode(self, network: object, batch: dict[str, tf.Tensor], steps: slice) -> tf.Tensor:
        features, _ = network.encode(batch["obs"][:, steps], batch["prev_action"][:, steps],
                                     burn_in=self.burn_in, warm=batch["warm"])
        return features

    def _sequence_critic_gradients(self, batch: dict[str, tf.Tensor], next_noise: tf.Tensor, alpha: tf.Tensor,
                                   global_batch: int | None, wrt: list | None) -> tuple[list, dict[str, tf.Tensor]]:
        s, mask = self.settings, batch["mask"]
        slots = global_batch or int(mask.shape[0]) * int(mask.shape[1])
        # Each step's target reads the next step's features: actor and target critic at index t + 1.
        next_action, next_log_prob = self.actor.sample(self._encode(self.actor, batch, slice(None))[:, 1:],
                                                       next_noise)
        next_q1, next_q2 = self.target_critic(self._encode(self.target_critic, batch, slice(None))[:, 1:],
                                              next_action)
        target = tf.stop_gradient(losses.td_target(batch["reward"], batch["terminated"], next_q1, next_q2,
                                                   next_log_prob, alpha, s.gamma, s.reward_scale))
        critic_vars = self.critic.trainable_variables if wrt is None else wrt
        with tf.GradientTape() as tape:
            if wrt is not None:
                tape.watch(wrt)
            q1, q2 = self.critic(self._encode(self.critic, batch, slice(0, -1)), batch["action"])
            loss_c, metrics = losses.critic_loss(q1, q2, target, slots, mask)
        metrics["valid_fraction"] = tf.reduce_sum(mask) / slots
        return tape.gradient(loss_c, critic_vars), metrics

    def _sequence_actor_gradients(self, batch: dict[str, tf.Tensor], noise: tf.Tensor, alpha: tf.Tensor,
                                  global_batch: int | None, wrt: list | None
                                  ) -> tuple[list, tf.Tensor, dict[str, tf.Tensor]]:
        mask = batch["mask"]
        slots = global_batch or int(mask.shape[0]) * int(mask.shape[1])
        critic_features = tf.stop_gradient(self._encode(self.critic, batch, slice(0, -1)))
        actor_vars = self.actor.trainable_variables if wrt is None else wrt
        with tf.GradientTape() as tape:
            if wrt is not None:
                tape.watch(wrt)
            new_action, log_prob = self.actor.sample(self._encode(self.actor, batch, slice(0, -1)), noise)
            q1_pi, q2_pi = self.critic(critic_features, new_action)
            loss_a, metrics = losses.actor_loss(log_prob, q1_pi, q2_pi, alpha, slots, mask)
        metrics["valid_fraction"] = tf.reduce_sum(mask) / slots
        return tape.gradient(loss_a, actor_vars), log_prob, metrics

    def _finish_update(self, metrics: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Target critics trail the critics (Polyak averaging, every step); count the update."""
        losses.polyak_update(self.target_critic.variables, self.critic.variables, self.settings.tau)
        self.update_counter.assign_add(1)
        metrics["alpha"] = self.alpha
        return metrics

    def _update(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One gradient step on one device (the default path): the replica phases below, on the whole
        batch, their losses batch means (or, for sequences, sums over the B * T slots)."""
        rows = self._rows(batch)
        slots = self._loss_slots(batch, rows[0]) if self.sequences else None
        critic_grads, metrics = self._per_valid_step(*self._critic_phase(
            None, slots, batch, self._noise(self._update_key, self.update_counter, 0, rows)))
        self.critic_optimizer.apply_gradients(zip(critic_grads, self.critic.trainable_variables))
        actor_grads, alpha_grad, actor_metrics = self._actor_phase(
            None, slots, batch, self._noise(self._update_key, self.update_counter, 1, rows))
        (actor_grads, alpha_grad), actor_metrics = self._per_valid_step((actor_grads, alpha_grad), actor_metrics)
        self.actor_optimizer.apply_gradients(zip(actor_grads, self.actor.trainable_variables))
        metrics.update(actor_metrics)
        if self.settings.learn_alpha:
            self.alpha_optimizer.apply_gradients([(alpha_grad, self.log_alpha)])
        return self._finish_update(metrics)

    # --- The two phases of an update: one replica's share of a distributed update, or (values None,
    # global_batch None for transitions) the whole batch of the single-device update ------------------
    def _critic_phase(self, values: dict[str, list] | None, global_batch: int | None, batch: dict[str, tf.Tensor],
                      next_noise: tf.Tensor) -> tuple:
        wrt = None if values is None else values["critic"]
        return self._critic_gradients(batch, next_noise, self.alpha, global_batch, wrt=wrt)

    def _actor_phase(self, values: dict[str, list] | None, global_batch: int | None, batch: dict[str, tf.Tensor],
                     noise: tf.Tensor) -> tuple:
        wrt = None if values is None else values["actor"]
        grads, log_prob, metrics = self._actor_gradients(batch, noise, self.alpha, global_batch, wrt=wrt)
        alpha_grad = tf.zeros([])
        if self.settings.learn_alpha:
            alpha_grad, alpha_metrics = self._alpha_gradient(
                log_prob, global_batch, wrt=None if values is None else values["log_alpha"][0],
                mask=batch["mask"] if self.sequences else None)
            metrics.update(alpha_metrics)
        return grads, alpha_grad, metrics

    def _replica_groups(self) -> dict[str, list]:
        return {"actor": self.actor.weights, "critic": self.critic.weights, "target_critic": self.target_critic.weights,
                "log_alpha": [self.log_alpha]}

    def _replica_phase(self, phase: object, args: tuple, global_batch: int) -> tuple:
        """Run a phase on this replica. With XLA (jit_compile under a strategy) it is compiled as a
        pure function of this replica's own variable values, passed in as inputs and read through a
        Keras StatelessScope: XLA cannot compile a step that touches variables living on several
        devices (keras-team/keras#19005), but it can compile one that touches none."""
        if not self._compile_replicas:
            return phase(None, global_batch, *args)
        groups = self._replica_groups()
        values = {name: [tf.convert_to_tensor(v) for v in variables] for name, variables in groups.items()}
        return self._compiled_phase(phase, global_batch)(values, *args)

    def _compiled_phase(self, phase: object, global_batch: int) -> object:
        key = (phase.__name__, global_batch)
        if key not in self._compiled_phases:
            groups = self._replica_groups()

            def pure(values: dict[str, list], *args: tf.Tensor) -> tuple:
                mapping = [(v, x) for name in groups for v, x in zip(groups[name], values[name])]
                with keras.StatelessScope(state_mapping=mapping):
                    return phase(values, global_batch, *args)

            self._compiled_phases[key] = tf.function(pure, jit_compile=True)
        return self._compiled_phases[key]

    def _distributed_update(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One gradient step under the strategy. `batch` is this worker's share of the global
        batch; each replica takes its rows, and draws its rows of the global batch's noise, so that
        every example sees the same noise as on one device. Gradients and metrics are summed over
        the replicas (one all-reduce per phase) and applied once to the mirrored variables."""
        rep, strategy = self.replication, self.replication.strategy
        global_batch = int(batch["action"].shape[0]) * rep.num_workers
        rows = global_batch // rep.num_replicas
        slots = self._loss_slots(batch, global_batch)

        def own_rows(x: object, replica: tf.Tensor) -> object:
            local = replica - rep.worker_index * rep.local_replicas
            return tf.nest.map_structure(lambda a: a[local * rows:(local + 1) * rows], x)

        def noise_rows(stream: int, replica: tf.Tensor) -> tf.Tensor:
            noise = self._noise(self._update_key, self.update_counter, stream, self._rows(batch, global_batch))
            return noise[replica * rows:(replica + 1) * rows]

        def summed(values: object) -> object:
            """Sum over all replicas inside the replica function; one copy of it outside."""
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)

        def one_copy(per_replica: object) -> object:
            return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], per_replica)

        def critic_replica(batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            args = (own_rows(batch, replica), noise_rows(0, replica))
            return summed(self._replica_phase(self._critic_phase, args, slots))

        critic_grads, metrics = self._per_valid_step(*one_copy(strategy.run(critic_replica, args=(batch,))))
        self.critic_optimizer.apply_gradients(zip(critic_grads, self.critic.trainable_variables))

        def actor_replica(batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            args = (own_rows(batch, replica), noise_rows(1, replica))
            return summed(self._replica_phase(self._actor_phase, args, slots))

        actor_grads, alpha_grad, actor_metrics = one_copy(strategy.run(actor_replica, args=(batch,)))
        (actor_grads, alpha_grad), actor_metrics = self._per_valid_step((actor_grads, alpha_grad), actor_metrics)
        self.actor_optimizer.apply_gradients(zip(actor_grads, self.actor.trainable_variables))
        metrics.update(actor_metrics)
        if self.settings.learn_alpha:
            self.alpha_optimizer.apply_gradients([(alpha_grad, self.log_alpha)])
        return self._finish_update(metrics)

    def _update_many(self, batches: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """K gradient steps in one call, one per batch of the stacked [K, B, ...] inputs, in order."""
        metrics = self._update_step({k: v[0] for k, v in batches.items()})
        if batches["action"].shape[0] == 1:  # static: the default one-step call gets no loop at all
            return metrics
        for i in tf.range(1, tf.shape(batches["action"])[0]):
            metrics = self._update_step({k: v[i] for k, v in batches.items()})
        return metrics

    def _train_and_act(self, *args: tf.Tensor) -> tuple:
        """args: the batch tensors (in batch_keys order), the observations to act on, and for a
        recurrent policy the acting state (first-step flags, previous actions, recurrent state)."""
        n = len(self.batch_keys)
        metrics = self._update_many(dict(zip(self.batch_keys, args[:n])))
        act_obs = args[n]
        if not self.policy.recurrent:
            return metrics, self.policy.sample(act_obs)
        return metrics, *self.policy.sample_step(act_obs, *args[n + 1:])

    def train_and_act(self, batches: dict[str, np.ndarray], obs: np.ndarray, state: list[np.ndarray] | None = None,
                      first: np.ndarray | None = None) -> tuple[dict[str, tf.Tensor], np.ndarray, list[np.ndarray]]:
        """K gradient steps on stacked [K, B, ...] batches, then sample actions for `obs` [N, O] from the
        updated policy, all in one compiled call: the same arithmetic as K updates followed by
        `policy.act_with_state(obs, state, first, stochastic=True)`, without a second call's fixed cost on every
        env step. Returns the last update's metrics (scalar tensors), the actions and the policy's
        next acting state (Policy.act_with_state; an empty list for a feed-forward policy)."""
        args = tuple(batches[k] for k in self.batch_keys) + (obs,)
        if self.policy.recurrent:
            if state is None:
                state = self.policy.initial_state(len(obs))
                first = np.ones(len(obs), bool)
            args += (np.asarray(first, np.float32), *state)
        shapes = tuple(np.shape(a) for a in args)
        call = self._train_and_act_calls.get(shapes)
        if call is None:
            # The graph traced for these shapes, called directly: this skips tf.function's per-call
            # argument matching, about 1 ms of Python per call with ~70 captured variables
            # (measured with perf; README "Speed").
            call = self._train_and_act_fn.get_concrete_function(
                *[tf.TensorSpec(shape, tf.float32) for shape in shapes])
            self._train_and_act_calls[shapes] = call
        metrics, actions, *new_state = call(*[tf.convert_to_tensor(a, tf.float32) for a in args])
        actions = actions.numpy()
        if not self.policy.recurrent:
            return metrics, actions, []
        return metrics, actions, [actions] + [np.asarray(s) for s in new_state[0]]
