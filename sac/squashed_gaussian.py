"""The tanh-squashed diagonal Gaussian policy distribution (paper, Appendix C).

A pre-squash sample u ~ N(mean, std^2) is squashed and scaled into the action box [low, high]:

    a = center + half_range * tanh(u),   center = (high + low) / 2,   half_range = (high - low) / 2.

By the change of variables (paper eq. 26, extended by the affine scale), per action dimension

    log pi(a) = log N(u; mean, std) - log(1 - tanh(u)^2) - log(half_range).

log(1 - tanh(u)^2) is computed as 2 * (log 2 - u - softplus(-2u)), which is exact and stays finite
for any u, where log(1 - tanh(u)^2 + eps) is biased near the bounds and -inf once tanh rounds to 1.
"""
from __future__ import annotations

import math

import tensorflow as tf

# log(std) is clipped to this range, as TF-Agents' haarnoja18 actor does (std_clip_transform) and
# the paper's code (softlearning) did. The network's raw output is log(std), so std starts near 1.
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


def bound_log_std(raw: tf.Tensor) -> tf.Tensor:
    """Clip the network's log(std) output into [LOG_STD_MIN, LOG_STD_MAX]."""
    return tf.clip_by_value(raw, LOG_STD_MIN, LOG_STD_MAX)


def log_one_minus_tanh_squared(u: tf.Tensor) -> tf.Tensor:
    """log(1 - tanh(u)^2) = log(d tanh(u) / du), finite for every finite u."""
    return 2.0 * (_LOG_2 - u - tf.nn.softplus(-2.0 * u))


def gaussian_log_prob_from_noise(noise: tf.Tensor, log_std: tf.Tensor) -> tf.Tensor:
    """log N(u; mean, std) per dimension for u = mean + std * noise, computed from the noise itself
    so that no precision is lost subtracting the mean back out."""
    return -0.5 * tf.square(noise) - log_std - _HALF_LOG_2PI


def sample(mean: tf.Tensor, log_std: tf.Tensor, noise: tf.Tensor, center: tf.Tensor,
           half_range: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A reparameterised sample (paper eq. 11): actions [B, A] and their log-densities [B].

    Gradients flow from both outputs back to `mean` and `log_std`; `noise` is standard normal.
    """
    u = mean + tf.exp(log_std) * noise
    log_prob = tf.reduce_sum(
        gaussian_log_prob_from_noise(noise, log_std) - log_one_minus_tanh_squared(u) - tf.math.log(half_range),
        axis=-1,
    )
    return squash(u, center, half_range), log_prob


def squash(u: tf.Tensor, center: tf.Tensor, half_range: tf.Tensor) -> tf.Tensor:
    """Pre-tanh values to actions; the clip only removes float rounding beyond the bounds."""
    return tf.clip_by_value(center + half_range * tf.tanh(u), center - half_range, center + half_range)


def mode(mean: tf.Tensor, center: tf.Tensor, half_range: tf.Tensor) -> tf.Tensor:
    """The deterministic action used for evaluation: the squashed mean."""
    return squash(mean, center, half_range)


def log_prob(action: tf.Tensor, mean: tf.Tensor, log_std: tf.Tensor, center: tf.Tensor,
             half_range: tf.Tensor) -> tf.Tensor:
    """log pi(action) for actions strictly inside the box (the inverse of `sample`)."""
    u = tf.atanh((action - center) / half_range)
    noise = (u - mean) * tf.exp(-log_std)
    return tf.reduce_sum(
        gaussian_log_prob_from_noise(noise, log_std) - log_one_minus_tanh_squared(u) - tf.math.log(half_range),
        axis=-1,
    )
