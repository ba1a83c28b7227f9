"""Stateless Gaussian noise streams: N(0, 1) draws keyed by (key, STREAMS * counter + stream).

The key and the counter are int64 variables owned by whoever draws (the agent's update stream,
a policy's acting stream), so that a saved training state carries its own noise streams and the
same seed gives the same run. One counter value leaves room for STREAMS draws that must differ:
the update draws stream 0 (the next actions of the critics' target) and stream 1 (the actor's
actions) per update; a policy draws stream 0 once per sampling call.
"""
from __future__ import annotations

from typing import Any

STREAMS = 4  # draws per counter value; the update uses two of them


def seed_pair(key: Any, counter: Any, stream: int = 0) -> Any:
    """Graph code: the int64 seed pair of draw `stream` at `counter` of the noise stream `key`."""
    import tensorflow as tf

    return tf.stack([tf.convert_to_tensor(key), STREAMS * counter + stream])


def standard_normal_draws(jit_compile: bool) -> Any:
    """A function (shape, seed) -> stateless N(0, 1) draws of that shape, keyed by the int64 pair
    `seed`. XLA draws stateless normals with another algorithm than TensorFlow's own kernels, so the
    draws are compiled exactly when the code around them would be: a distributed update (which runs
    as a plain graph) with jit_compile=True then draws the same noise as the one-device XLA update."""
    import tensorflow as tf

    def draw(shape: tuple[int, ...], seed: Any) -> Any:
        return tf.random.stateless_normal(shape, seed=seed)

    return tf.function(draw, jit_compile=True) if jit_compile else draw
