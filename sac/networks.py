"""The policy and Q-function networks (paper Table 1: two hidden ReLU layers of 256).

Plain feed-forward Keras 3 models on flat float32 observations, stateless: each call sees one step.
A recurrent network is not a drop-in replacement with the same signatures: it also needs a state
carried from step to step (and reset at episode starts), sequences from the replay buffer, and
losses over those sequences.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from sac import seeding, squashed_gaussian


def _dense(size: int, seed: int, name: str, activation: str | None = None) -> keras.layers.Dense:
    """Keras' default Dense initialisation (Glorot-uniform kernel, zero bias), with an explicit
    seed so that the same seed builds the same network whatever else was created before."""
    return keras.layers.Dense(size, activation=activation, name=name,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed))


def _mlp(hidden_sizes: Sequence[int], seed: int, name: str) -> list[keras.layers.Layer]:
    return [_dense(size, seed + i, f"{name}_hidden{i}", "relu") for i, size in enumerate(hidden_sizes)]


class Actor(keras.Model):
    """obs [B, O] -> (mean [B, A], log_std [B, A]) of the pre-tanh Gaussian, log_std bounded.

    The action box is stored as non-trainable constants so that `sample` and `mode` return actions
    in the environment's own units.
    """

    def __init__(self, action_low: np.ndarray, action_high: np.ndarray, hidden_sizes: Sequence[int],
                 seed: int = 0, name: str = "actor") -> None:
        super().__init__(name=name)
        low = np.asarray(action_low, np.float32)
        high = np.asarray(action_high, np.float32)
        self.action_dim = int(low.shape[0])
        self.center = tf.constant((high + low) / 2.0)
        self.half_range = tf.constant((high - low) / 2.0)
        self.hidden = _mlp(hidden_sizes, seed, name)
        self.head = _dense(2 * self.action_dim, seed + len(self.hidden), f"{name}_head")

    def call(self, obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
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


class TwinCritic(keras.Model):
    """Two independent Q-functions (clipped double Q, paper Section 4.2 / Fujimoto et al. 2018)."""

    def __init__(self, hidden_sizes: Sequence[int], seed: int = 0, name: str = "critic") -> None:
        super().__init__(name=name)
        q1_seed, q2_seed = seeding.derive(seed, 2)
        self.q1 = QNetwork(hidden_sizes, q1_seed, name=f"{name}_q1")
        self.q2 = QNetwork(hidden_sizes, q2_seed, name=f"{name}_q2")

    def call(self, obs: tf.Tensor, action: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.q1(obs, action), self.q2(obs, action)


def build_actor(obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                hidden_sizes: Sequence[int], seed: int = 0) -> Actor:
    """An Actor with its variables created (Keras 3 creates them on the first call, STACK.md)."""
    actor = Actor(action_low, action_high, hidden_sizes, seed=seed)
    actor(tf.zeros([1, obs_dim], tf.float32))
    return actor


def build_critic(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], seed: int = 0,
                 name: str = "critic") -> TwinCritic:
    critic = TwinCritic(hidden_sizes, seed=seed, name=name)
    critic(tf.zeros([1, obs_dim], tf.float32), tf.zeros([1, action_dim], tf.float32))
    return critic
