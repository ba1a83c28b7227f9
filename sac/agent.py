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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from sac import losses, seeding
from sac.batch_kinds import BatchKind, Sequences, Transitions
from sac.distribute import Replication
from sac.distributed_update import ReplicatedPhases
from sac.kinds import NetworkKind, any_recurrent
from sac.networks import build_actor, build_critic
from sac.noise import seed_pair, standard_normal_draws
from sac.policy import Policy


@dataclass(frozen=True)
class SACSettings:
    """The hyperparameters the update uses. No defaults here: their defaults and sources live in
    sac/config.py alone, and sac.builder.sac_settings makes these from a run's config."""

    gamma: float
    tau: float
    reward_scale: float
    target_entropy: float  # nats, for the action density in the env's own units (resolved: never None)
    learn_alpha: bool
    initial_alpha: float
    actor_lr: float
    critic_lr: float
    alpha_lr: float


@contextlib.contextmanager
def _tape(wrt: object | None) -> Iterator[tf.GradientTape]:
    """A gradient tape that also watches `wrt`, the tensors standing for variables in a replica's
    compiled phase (a tape watches trainable variables by itself, but not plain tensors)."""
    with tf.GradientTape() as tape:
        if wrt is not None:
            tape.watch(wrt)
        yield tape


class SACAgent:
    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int], settings: SACSettings, seed: int, jit_compile: bool = True,
                 replication: Replication | None = None, actor_network: NetworkKind = "mlp",
                 critic_network: NetworkKind = "mlp", rnn_units: int = 0, burn_in: int = 0) -> None:
        self.settings = settings
        self.obs_dim = int(obs_dim)
        self.action_dim = int(np.asarray(action_low).shape[0])
        self.networks = {"actor": actor_network, "critic": critic_network, "rnn_units": int(rnn_units)}
        # What the update reads of a batch: sequences if any network is recurrent, else transitions.
        self.batch_kind: BatchKind = (Sequences(burn_in) if any_recurrent(actor_network, critic_network)
                                      else Transitions())
        self.sequences = self.batch_kind.sequences
        self.batch_keys = self.batch_kind.keys
        self.replication = replication or Replication(None)
        strategy = self.replication.strategy
        # Under a tf.distribute strategy every variable (weights, optimizer slots, counters) is created
        # in its scope, so that each replica holds a mirrored copy.
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self._build(action_low, action_high, hidden_sizes, seed, jit_compile and strategy is None, jit_compile)
        if strategy is None:
            self._run_phase = self._one_device_phase
            self._train_and_act_fn = tf.function(self._train_and_act, jit_compile=jit_compile)
        else:
            # XLA cannot compile a step whose variables live on several devices (keras-team/keras#19005):
            # the distributed step is a graph whose per-replica phases are XLA-compiled on values
            # (sac/distributed_update.py; docs/distributed.md).
            self._replicas = ReplicatedPhases(self.replication, self._replica_variables, jit_compile)
            self._run_phase = self._replicated_phase
            self._train_and_act_fn = tf.function(self._train_and_act)
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

    # --- The whole learning state, listed once ---------------------------------------------------------
    def _state_variables(self) -> dict[str, list]:
        """Every variable the update reads or writes, in groups: get_state / set_state (whose group
        and list order is the pickled training state's, sac/training_state.py), the non-finite
        check and, for the groups a replica's phase reads, the distributed update."""
        return {
            "actor": self.actor.weights, "critic": self.critic.weights, "target_critic": self.target_critic.weights,
            "actor_optimizer": self.actor_optimizer.variables, "critic_optimizer": self.critic_optimizer.variables,
            "alpha_optimizer": self.alpha_optimizer.variables,
            "scalars": [self.log_alpha, self.update_counter, self.policy.noise_counter, self._update_key,
                        self.policy.noise_key],
        }

    def _replica_variables(self) -> dict[str, list]:
        """The state groups a phase of the update reads: the weights and log(alpha) (scalars[0])."""
        state = self._state_variables()
        return {"actor": state["actor"], "critic": state["critic"], "target_critic": state["target_critic"],
                "log_alpha": state["scalars"][:1]}

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

    def _noise(self, stream: int, rows: tuple[int, ...]) -> tf.Tensor:
        """N(0, 1) draws of shape rows + (action_dim,): draw `stream` of this update (sac/noise.py)."""
        return self._draw(tuple(rows) + (self.action_dim,), seed_pair(self._update_key, self.update_counter, stream))

    def _rows(self, batch: dict[str, tf.Tensor], rows: int | None = None) -> tuple[int, ...]:
        """The shape of a batch's noise rows (without the action axis): [B] for transitions, [B, T]
        for sequences (one draw per step); `rows` replaces B (the global batch of a distributed one)."""
        shape = tuple(int(d) for d in batch["action"].shape[:-1])
        return shape if rows is None else (rows,) + shape[1:]

    # --- The update (Algorithm 1, one gradient step) -------------------------------------------------
    # Each phase's loss and gradients are computed by one method, used by both the single-device
    # update and the distributed one (where each replica computes them on its rows of the batch,
    # normalised by the global batch so that the summed gradients are those of the global mean).
    # `divisor` is what loss sums are divided by (BatchKind.loss_divisor; None: batch means); `wrt`
    # the values standing for the variables in a replica's compiled phase (sac/distributed_update.py).

    def _critic_gradients(self, batch: dict[str, tf.Tensor], next_noise: tf.Tensor, alpha: tf.Tensor,
                          divisor: int | None = None, wrt: list | None = None) -> tuple[list, dict[str, tf.Tensor]]:
        """Critics: regress both Q-functions on the soft Bellman target (eqs. 5-7). Gradients with
        respect to the critic's variables, or to `wrt`."""
        s, kind = self.settings, self.batch_kind
        divisor = kind.loss_divisor(batch, None) if divisor is None else divisor
        next_action, next_log_prob = self.actor.sample(kind.next_features(self.actor, batch), next_noise)
        next_q1, next_q2 = self.target_critic(kind.next_features(self.target_critic, batch), next_action)
        target = tf.stop_gradient(losses.td_target(batch["reward"], batch["terminated"], next_q1, next_q2,
                                                   next_log_prob, alpha, s.gamma, s.reward_scale))
        with _tape(wrt) as tape:
            q1, q2 = self.critic(kind.features(self.critic, batch), batch["action"])
            loss_c, metrics = losses.critic_loss(q1, q2, target, divisor, kind.mask(batch))
        kind.count_steps(metrics, batch, divisor)
        return tape.gradient(loss_c, self.critic.trainable_variables if wrt is None else wrt), metrics

    def _actor_gradients(self, batch: dict[str, tf.Tensor], noise: tf.Tensor, alpha: tf.Tensor,
                         divisor: int | None = None, wrt: list | None = None
                         ) -> tuple[list, tf.Tensor, dict[str, tf.Tensor]]:
        """Actor: minimise alpha * log pi - min Q through a reparameterised sample (eq. 12)."""
        kind = self.batch_kind
        divisor = kind.loss_divisor(batch, None) if divisor is None else divisor
        critic_features = kind.features(self.critic, batch, stop_gradient=True)
        with _tape(wrt) as tape:
            new_action, log_prob = self.actor.sample(kind.features(self.actor, batch), noise)
            q1_pi, q2_pi = self.critic(critic_features, new_action)
            loss_a, metrics = losses.actor_loss(log_prob, q1_pi, q2_pi, alpha, divisor, kind.mask(batch))
        kind.count_steps(metrics, batch, divisor)
        return tape.gradient(loss_a, self.actor.trainable_variables if wrt is None else wrt), log_prob, metrics

    def _alpha_gradient(self, log_prob: tf.Tensor, divisor: int | None = None, wrt: tf.Tensor | None = None,
                        mask: tf.Tensor | None = None) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Temperature: move log(alpha) so the policy's entropy tracks the target (eq. 18). It reuses
        the log-probs of the actor step, as SB3 and CleanRL do (TF-Agents samples the updated actor
        again; the difference is one actor step's change to the entropy estimate)."""
        log_alpha = self.log_alpha if wrt is None else wrt
        with _tape(wrt) as tape:
            loss_t, metrics = losses.alpha_loss(log_alpha, log_prob, self.settings.target_entropy, divisor, mask)
        return tape.gradient(loss_t, log_alpha), metrics

    # --- The two phases of an update: one replica's share of a distributed update (`values`: the
    # tensors standing for its variables, or None), or the whole batch of the single-device update ----
    def _critic_phase(self, values: dict[str, list] | None, divisor: int | None, batch: dict[str, tf.Tensor],
                      next_noise: tf.Tensor) -> tuple:
        wrt = None if values is None else values["critic"]
        return self._critic_gradients(batch, next_noise, self.alpha, divisor, wrt=wrt)

    def _actor_phase(self, values: dict[str, list] | None, divisor: int | None, batch: dict[str, tf.Tensor],
                     noise: tf.Tensor) -> tuple:
        wrt = None if values is None else values["actor"]
        grads, log_prob, metrics = self._actor_gradients(batch, noise, self.alpha, divisor, wrt=wrt)
        alpha_grad = tf.zeros([])
        if self.settings.learn_alpha:
            alpha_grad, alpha_metrics = self._alpha_gradient(
                log_prob, divisor, wrt=None if values is None else values["log_alpha"][0],
                mask=self.batch_kind.mask(batch))
            metrics.update(alpha_metrics)
        return grads, alpha_grad, metrics

    def _one_device_phase(self, phase: object, batch: dict[str, tf.Tensor], stream: int) -> tuple:
        """A phase on the whole batch: losses are batch means (or, for sequences, sums over the B * T slots)."""
        return phase(None, self.batch_kind.loss_divisor(batch, None), batch, self._noise(stream, self._rows(batch)))

    def _replicated_phase(self, phase: object, batch: dict[str, tf.Tensor], stream: int) -> tuple:
        """A phase on every replica's rows of the global batch, summed over the replicas."""
        return self._replicas.run(phase, batch, noise=lambda rows: self._noise(stream, self._rows(batch, rows)),
                                  loss_divisor=lambda rows: self.batch_kind.loss_divisor(batch, rows))

    def _update(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One gradient step: the critic phase, then the actor and temperature phase (on one device,
        or on every replica with their gradients summed), each applied once; then the targets."""
        kind = self.batch_kind
        critic_grads, metrics = kind.per_valid_step(*self._run_phase(self._critic_phase, batch, 0))
        self.critic_optimizer.apply_gradients(zip(critic_grads, self.critic.trainable_variables))
        actor_grads, alpha_grad, actor_metrics = self._run_phase(self._actor_phase, batch, 1)
        (actor_grads, alpha_grad), actor_metrics = kind.per_valid_step((actor_grads, alpha_grad), actor_metrics)
        self.actor_optimizer.apply_gradients(zip(actor_grads, self.actor.trainable_variables))
        metrics.update(actor_metrics)
        if self.settings.learn_alpha:
            self.alpha_optimizer.apply_gradients([(alpha_grad, self.log_alpha)])
        # Target critics trail the critics (Polyak averaging, every step); count the update.
        losses.polyak_update(self.target_critic.variables, self.critic.variables, self.settings.tau)
        self.update_counter.assign_add(1)
        metrics["alpha"] = self.alpha
        return metrics

    def _update_many(self, batches: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """K gradient steps in one call, one per batch of the stacked [K, B, ...] inputs, in order."""
        metrics = self._update({k: v[0] for k, v in batches.items()})
        if batches["action"].shape[0] == 1:  # static: the default one-step call gets no loop at all
            return metrics
        for i in tf.range(1, tf.shape(batches["action"])[0]):
            metrics = self._update({k: v[i] for k, v in batches.items()})
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
            # (measured with perf; docs/speed.md).
            call = self._train_and_act_fn.get_concrete_function(
                *[tf.TensorSpec(shape, tf.float32) for shape in shapes])
            self._train_and_act_calls[shapes] = call
        metrics, actions, *new_state = call(*[tf.convert_to_tensor(a, tf.float32) for a in args])
        actions = actions.numpy()
        if not self.policy.recurrent:
            return metrics, actions, []
        return metrics, actions, [actions] + [np.asarray(s) for s in new_state[0]]
