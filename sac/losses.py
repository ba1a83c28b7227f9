"""SAC's losses as pure functions: tensors in, a scalar loss and a dict of metrics out.

Equation numbers refer to Haarnoja et al., "Soft Actor-Critic Algorithms and Applications"
(arXiv 1812.05905). Constants follow TF-Agents' SacAgent, which reproduces the paper's results.
"""
from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

Metrics = dict[str, tf.Tensor]


def batch_mean(x: tf.Tensor, global_batch: int | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
    """The mean over the batch; with `global_batch` (one replica's rows of a batch split across
    replicas) the sum over these rows divided by the global batch size, so that the replicas' values,
    and their gradients, add up to those of the global mean.

    With `mask` (sequences [B, T]: 1 for steps that count, 0 for padding and burn-in), the masked
    sum divided by `global_batch`, here the number of step slots B * T of the global batch: masked
    steps add nothing. The agent then divides by the fraction of slots that count (the same for
    every term, so it rescales gradients after the replicas' sum), which makes each loss the mean
    over the steps that count, as pomdp-baselines normalises its sequence losses."""
    if mask is not None:
        return tf.reduce_sum(x * mask) / global_batch
    return tf.reduce_mean(x) if global_batch is None else tf.reduce_sum(x) / global_batch


def td_target(reward: tf.Tensor, terminated: tf.Tensor, next_q1: tf.Tensor, next_q2: tf.Tensor,
              next_log_prob: tf.Tensor, alpha: tf.Tensor, gamma: float, reward_scale: float) -> tf.Tensor:
    """The soft Bellman target (eqs. 2-3) with clipped double Q (Section 4.2):

        y = reward_scale * r + gamma * (1 - terminated) * (min(Q1', Q2')(s', a') - alpha * log pi(a'|s'))

    Only `terminated` cuts the return: a transition that ended by a time limit (truncated) still
    bootstraps, because the state it stopped in has a future. The caller stops gradients into y.
    """
    soft_value = tf.minimum(next_q1, next_q2) - alpha * next_log_prob
    return reward_scale * reward + gamma * (1.0 - terminated) * soft_value


def critic_loss(q1: tf.Tensor, q2: tf.Tensor, target: tf.Tensor, global_batch: int | None = None,
                mask: tf.Tensor | None = None) -> tuple[tf.Tensor, Metrics]:
    """Half the squared TD error of each Q-function (eq. 5), batch means, summed over the two
    (TF-Agents: squared_difference per critic, summed, times critic_loss_weight = 0.5)."""
    loss = 0.5 * (batch_mean(tf.square(q1 - target), global_batch, mask)
                  + batch_mean(tf.square(q2 - target), global_batch, mask))
    return loss, {"loss/critic": loss, "q/mean": batch_mean(0.5 * (q1 + q2), global_batch, mask)}


def actor_loss(log_prob: tf.Tensor, q1: tf.Tensor, q2: tf.Tensor, alpha: tf.Tensor, global_batch: int | None = None,
               mask: tf.Tensor | None = None) -> tuple[tf.Tensor, Metrics]:
    """E[alpha * log pi(a|s) - min(Q1, Q2)(s, a)] with a reparameterised a (eq. 12)."""
    loss = batch_mean(alpha * log_prob - tf.minimum(q1, q2), global_batch, mask)
    return loss, {"loss/actor": loss, "policy/entropy": -batch_mean(log_prob, global_batch, mask)}


def alpha_loss(log_alpha: tf.Tensor, log_prob: tf.Tensor, target_entropy: float, global_batch: int | None = None,
               mask: tf.Tensor | None = None) -> tuple[tf.Tensor, Metrics]:
    """Temperature loss (eq. 18), taken on log(alpha) as TF-Agents and SB3 do: alpha stays positive
    and Adam's steps are relative. It raises alpha while the entropy is below the target."""
    loss = batch_mean(-log_alpha * tf.stop_gradient(log_prob + target_entropy), global_batch, mask)
    return loss, {"loss/alpha": loss}


def polyak_update(target_variables: Sequence[tf.Variable], source_variables: Sequence[tf.Variable],
                  tau: float) -> None:
    """target <- (1 - tau) * target + tau * source (the target-network update of Algorithm 1)."""
    for target, source in zip(target_variables, source_variables, strict=True):
        target.assign((1.0 - tau) * target + tau * source)
