"""The pieces of the update in closed form: Polyak averaging and the soft TD target."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sac import losses

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("tau, expected", [(0.0, "target"), (1.0, "source"), (0.5, "midpoint")])
def test_polyak_update(tau, expected):
    rng = np.random.default_rng(0)
    source_values = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    target_values = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    sources = [tf.Variable(v, dtype=tf.float64) for v in source_values]
    targets = [tf.Variable(v, dtype=tf.float64) for v in target_values]
    losses.polyak_update(targets, sources, tau)
    for t, s0, t0 in zip(targets, source_values, target_values):
        want = {"target": t0, "source": s0, "midpoint": (s0 + t0) / 2}[expected]
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-12)


def _target(terminated: float) -> float:
    return float(losses.td_target(
        reward=tf.constant([2.0]), terminated=tf.constant([terminated]), next_q1=tf.constant([10.0]),
        next_q2=tf.constant([7.0]), next_log_prob=tf.constant([-1.5]), alpha=tf.constant(0.2), gamma=0.9,
        reward_scale=0.5)[0])


def test_td_target_of_a_terminal_transition_is_the_scaled_reward_alone():
    assert _target(terminated=1.0) == pytest.approx(0.5 * 2.0)


def test_td_target_of_a_non_terminal_or_truncated_transition_bootstraps_from_the_smaller_soft_q():
    # min(10, 7) - 0.2 * (-1.5) = 7.3; 0.5 * 2 + 0.9 * 7.3 = 7.57. A truncated transition is stored
    # with terminated = 0, so it bootstraps exactly like this (see test_replay).
    assert _target(terminated=0.0) == pytest.approx(1.0 + 0.9 * 7.3)


def test_critic_actor_and_alpha_losses_in_closed_form():
    q1, q2, y = tf.constant([1.0, 2.0]), tf.constant([3.0, 0.0]), tf.constant([2.0, 2.0])
    loss, metrics = losses.critic_loss(q1, q2, y)
    assert float(loss) == pytest.approx(0.5 * ((1 + 0) / 2 + (1 + 4) / 2))
    assert float(metrics["q/mean"]) == pytest.approx(1.5)
    log_prob = tf.constant([-1.0, 0.5])
    loss, metrics = losses.actor_loss(log_prob, q1, q2, tf.constant(0.5))
    assert float(loss) == pytest.approx(((0.5 * -1.0 - 1.0) + (0.5 * 0.5 - 0.0)) / 2)
    assert float(metrics["policy/entropy"]) == pytest.approx(0.25)
    loss, _ = losses.alpha_loss(tf.constant(np.log(0.5), tf.float32), log_prob, target_entropy=-1.0)
    assert float(loss) == pytest.approx(-np.log(0.5) * ((-1.0 - 1.0) + (0.5 - 1.0)) / 2, rel=1e-6)
