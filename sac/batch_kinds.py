"""What an update reads of its batch, for the two kinds of batch: transitions (feed-forward
networks) and sequences (any recurrent network). The agent has one critic path and one actor path;
the kind supplies each network's per-step features, the mask of the steps that count, the divisor
of the loss sums, and the rescaling of sums over slots into means over the steps that count.

Sequences: obs / prev_action hold T + 1 steps (the last real one followed by its next
observation), so one pass of a network over them gives each step's features and, one index later,
its successor's. The state starts at zero: a sequence begins at its episode's start or is warmed up
by burn-in (sac/networks.py RecurrentEncoder).
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

Batch = dict[str, tf.Tensor]

# The keys of one batch, in the order train_and_act passes them.
TRANSITION_KEYS = ("obs", "action", "reward", "next_obs", "terminated")
SEQUENCE_KEYS = ("obs", "prev_action", "action", "reward", "terminated", "mask", "warm")


class Transitions:
    """[B, ...] transitions: features are the observations, every row counts, losses are batch means."""

    keys = TRANSITION_KEYS
    sequences = False

    def features(self, network: Any, batch: Batch, stop_gradient: bool = False) -> tf.Tensor:
        return batch["obs"]

    def next_features(self, network: Any, batch: Batch) -> tf.Tensor:
        return batch["next_obs"]

    def mask(self, batch: Batch) -> None:
        return None

    def loss_divisor(self, batch: Batch, global_rows: int | None) -> int | None:
        """None on one device (losses are batch means); the global batch size on a replica."""
        return global_rows

    def count_steps(self, metrics: dict[str, tf.Tensor], batch: Batch, divisor: int | None) -> None:
        pass

    def per_valid_step(self, grads: Any, metrics: dict[str, tf.Tensor]) -> tuple[Any, dict[str, tf.Tensor]]:
        return grads, metrics


class Sequences:
    """[B, T, ...] sequences: features come from each network's encoder, `mask` [B, T] flags the
    steps that count, loss sums are over the B * T step slots, then rescaled (per_valid_step)."""

    keys = SEQUENCE_KEYS
    sequences = True

    def __init__(self, burn_in: int) -> None:
        self.burn_in = int(burn_in)

    def _encode(self, network: Any, batch: Batch, steps: slice) -> tf.Tensor:
        features, _ = network.encode(batch["obs"][:, steps], batch["prev_action"][:, steps],
                                     burn_in=self.burn_in, warm=batch["warm"])
        return features

    def features(self, network: Any, batch: Batch, stop_gradient: bool = False) -> tf.Tensor:
        features = self._encode(network, batch, slice(0, -1))
        return tf.stop_gradient(features) if stop_gradient else features

    def next_features(self, network: Any, batch: Batch) -> tf.Tensor:
        """Each step's successor: the network at index t + 1."""
        return self._encode(network, batch, slice(None))[:, 1:]

    def mask(self, batch: Batch) -> tf.Tensor:
        return batch["mask"]

    def loss_divisor(self, batch: Batch, global_rows: int | None) -> int:
        """The step slots of the (global) batch: rows * T."""
        mask = batch["mask"]
        return (int(mask.shape[0]) if global_rows is None else global_rows) * int(mask.shape[1])

    def count_steps(self, metrics: dict[str, tf.Tensor], batch: Batch, divisor: int) -> None:
        """The fraction of slots that count (summed over replicas, it is the global fraction)."""
        metrics["valid_fraction"] = tf.reduce_sum(batch["mask"]) / divisor

    def per_valid_step(self, grads: Any, metrics: dict[str, tf.Tensor]) -> tuple[Any, dict[str, tf.Tensor]]:
        """Turn sums over the slots into means over the steps that count (losses.batch_mean):
        gradients and metrics are divided by the fraction of slots that count."""
        metrics = dict(metrics)
        scale = 1.0 / tf.maximum(metrics.pop("valid_fraction"), 1e-8)
        return tf.nest.map_structure(lambda g: g * scale, grads), {k: v * scale for k, v in metrics.items()}


BatchKind = Transitions | Sequences
