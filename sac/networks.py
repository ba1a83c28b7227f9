"""The policy and Q-function networks (paper Table 1: two hidden ReLU layers of 256).

Feed-forward ("mlp", the default): Keras 3 models on flat float32 observations; each call sees one
step, and works as well on [B, T, O] sequences (Dense layers act on the last axis).

Recurrent ("lstm", "gru"; docs/recurrent.md): an encoder runs an LSTM or GRU of
`rnn_units` over (observation, previous action) and hands its output, concatenated with the current
observation, to the same MLP and head. Actor and critic each have their own encoder (Ni et al.
2022, "Recurrent Model-Free RL Can Be a Strong Baseline for Many POMDPs": separate encoders are
more stable than a shared one); the critic's two Q-heads share the critic's encoder, as in
pomdp-baselines. The previous action is an input (as there and in RL^2) because with velocities
hidden, the effect of one's own action is what reveals the state; the previous reward is not, so
that a deployed policy needs nothing but observations. The recurrent state is explicit: `encode`
takes it and returns the new one; the caller zeroes it at episode starts.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from sac import seeding, squashed_gaussian
from sac.kinds import NETWORK_KINDS, NetworkKind, is_recurrent


def _dense(size: int, seed: int, name: str, activation: str | None = None) -> keras.layers.Dense:
    """Keras' default Dense initialisation (Glorot-uniform kernel, zero bias), with an explicit
    seed so that the same seed builds the same network whatever else was created before."""
    return keras.layers.Dense(size, activation=activation, name=name,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed))


def _mlp(hidden_sizes: Sequence[int], seed: int, name: str) -> list[keras.layers.Layer]:
    return [_dense(size, seed + i, f"{name}_hidden{i}", "relu") for i, size in enumerate(hidden_sizes)]


class RecurrentEncoder(keras.layers.Layer):
    """(obs [B, T, O], prev_action [B, T, A], state) -> (features [B, T, units + O], final state).

    The state is a list of [B, units] tensors: [h, c] for an LSTM, [h] for a GRU. With `burn_in`
    > 0 the first `burn_in` steps are run, then the state they produced is cut from the gradient
    for the rows flagged in `warm` [B] (R2D2's burn-in, Kapturowski et al. 2019): those rows'
    burn-in steps only warm the state up, and their losses are masked by the caller."""

    def __init__(self, network: NetworkKind, units: int, seed: int, name: str) -> None:
        super().__init__(name=name)
        layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[network]
        self.network, self.units = network, int(units)
        self.rnn = layer(units, return_sequences=True, return_state=True, name=f"{name}_{network}",
                         kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                         recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1))

    def zero_state(self, batch: int) -> list[tf.Tensor]:
        return [tf.zeros([batch, self.units]) for _ in range(2 if self.network == "lstm" else 1)]

    def _run(self, x: tf.Tensor, state: list[tf.Tensor]) -> tuple[tf.Tensor, list[tf.Tensor]]:
        outputs = self.rnn(x, initial_state=list(state))
        return outputs[0], list(outputs[1:])

    def call(self, obs: tf.Tensor, prev_action: tf.Tensor, state: list[tf.Tensor], burn_in: int = 0,
             warm: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        x = tf.concat([obs, prev_action], axis=-1)
        if burn_in > 0 and x.shape[1] > burn_in:
            head, state = self._run(x[:, :burn_in], state)
            if warm is not None:
                cut = warm[:, None] > 0
                state = [tf.where(cut, tf.stop_gradient(s), s) for s in state]
            tail, state = self._run(x[:, burn_in:], state)
            out = tf.concat([head, tail], axis=1)
        else:
            out, state = self._run(x, state)
        return tf.concat([out, obs], axis=-1), state


def _encoder(network: NetworkKind, rnn_units: int, seed: int, name: str) -> RecurrentEncoder | None:
    if network not in NETWORK_KINDS:
        raise ValueError(f"network must be one of {NETWORK_KINDS}, got {network!r}")
    # Its own seed, apart from the MLP layers' seed + i, so that an MLP network's weights do not
    # depend on whether another network is recurrent.
    return None if not is_recurrent(network) else RecurrentEncoder(network, rnn_units, seeding.derive(seed, 1)[0],
                                                           f"{name}_encoder")


class _Encoded:
    """What actors and critics share: an optional recurrent encoder in front of the MLP."""

    encoder: RecurrentEncoder | None

    @property
    def recurrent(self) -> bool:
        return self.encoder is not None

    def initial_state(self, batch: int) -> list[tf.Tensor]:
        """The zero state of an episode's first step (empty for an MLP)."""
        return [] if self.encoder is None else self.encoder.zero_state(batch)

    def encode(self, obs: tf.Tensor, prev_action: tf.Tensor, state: list[tf.Tensor] | None = None,
               burn_in: int = 0, warm: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Sequences [B, T, ...] -> the per-step features the MLP reads, and the final state. An MLP
        network's features are the observations themselves."""
        if self.encoder is None:
            return obs, []
        if state is None:
            state = self.encoder.zero_state(tf.shape(obs)[0])
        return self.encoder(obs, prev_action, state, burn_in=burn_in, warm=warm)


class Actor(_Encoded, keras.Model):
    """obs [B, O] -> (mean [B, A], log_std [B, A]) of the pre-tanh Gaussian, log_std bounded.

    The action box is stored as non-trainable constants so that `sample` and `mode` return actions
    in the environment's own units.
    """

    def __init__(self, action_low: np.ndarray, action_high: np.ndarray, hidden_sizes: Sequence[int],
                 seed: int = 0, name: str = "actor", network: NetworkKind = "mlp", rnn_units: int = 0) -> None:
        super().__init__(name=name)
        low = np.asarray(action_low, np.float32)
        high = np.asarray(action_high, np.float32)
        self.action_dim = int(low.shape[0])
        self.center = tf.constant((high + low) / 2.0)
        self.half_range = tf.constant((high - low) / 2.0)
        self.hidden = _mlp(hidden_sizes, seed, name)
        self.head = _dense(2 * self.action_dim, seed + len(self.hidden), f"{name}_head")
        self.encoder = _encoder(network, rnn_units, seed, name)

    def call(self, obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`obs` are observations for an MLP actor, the encoder's features for a recurrent one."""
        x = obs
        for layer in self.hidden:
            x = layer(x)
        mean, raw_log_std = tf.split(self.head(x), 2, axis=-1)
        return mean, squashed_gaussian.bound_log_std(raw_log_std)

    def sample(self, obs: tf.Tensor, noise: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Reparameterised actions and their log-probabilities; `noise` ~ N(0, I) of shape [B, A]."""
        mean, log_std = self(obs)
        return squashed_gaussian.sample(mean, log_std, noise, self.center, self.half_range)

    def mode(self, obs: tf.Tensor) -> tf.Tensor:
        mean, _ = self(obs)
        return squashed_gaussian.mode(mean, self.center, self.half_range)


class QNetwork(keras.Model):
    """(obs [B, O], action [B, A]) -> Q [B]."""

    def __init__(self, hidden_sizes: Sequence[int], seed: int, name: str) -> None:
        super().__init__(name=name)
        self.hidden = _mlp(hidden_sizes, seed, name)
        self.head = _dense(1, seed + len(self.hidden), f"{name}_head")

    def call(self, obs: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
        x = tf.concat([obs, action], axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return tf.squeeze(self.head(x), axis=-1)


class TwinCritic(_Encoded, keras.Model):
    """Two independent Q-functions (clipped double Q, paper Section 4.2 / Fujimoto et al. 2018);
    a recurrent critic's two heads read one encoder."""

    def __init__(self, hidden_sizes: Sequence[int], seed: int = 0, name: str = "critic", network: NetworkKind = "mlp",
                 rnn_units: int = 0) -> None:
        super().__init__(name=name)
        q1_seed, q2_seed = seeding.derive(seed, 2)
        self.q1 = QNetwork(hidden_sizes, q1_seed, name=f"{name}_q1")
        self.q2 = QNetwork(hidden_sizes, q2_seed, name=f"{name}_q2")
        self.encoder = _encoder(network, rnn_units, seed, name)

    def call(self, obs: tf.Tensor, action: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`obs` are observations for an MLP critic, the encoder's features for a recurrent one."""
        return self.q1(obs, action), self.q2(obs, action)


def build_actor(obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                hidden_sizes: Sequence[int], seed: int = 0, network: NetworkKind = "mlp", rnn_units: int = 0) -> Actor:
    """An Actor with its variables created (Keras 3 creates them on the first call, STACK.md)."""
    actor = Actor(action_low, action_high, hidden_sizes, seed=seed, network=network, rnn_units=rnn_units)
    if actor.recurrent:
        features, _ = actor.encode(tf.zeros([1, 1, obs_dim]), tf.zeros([1, 1, actor.action_dim]))
        actor(features)
    else:
        actor(tf.zeros([1, obs_dim], tf.float32))
    return actor


def build_critic(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], seed: int = 0,
                 name: str = "critic", network: NetworkKind = "mlp", rnn_units: int = 0) -> TwinCritic:
    critic = TwinCritic(hidden_sizes, seed=seed, name=name, network=network, rnn_units=rnn_units)
    features = tf.zeros([1, obs_dim], tf.float32)
    if critic.recurrent:
        features = critic.encode(tf.zeros([1, 1, obs_dim]), tf.zeros([1, 1, action_dim]))[0][:, 0]
    critic(features, tf.zeros([1, action_dim], tf.float32))
    return critic
