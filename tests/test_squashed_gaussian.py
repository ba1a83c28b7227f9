"""The tanh-squashed Gaussian against independent references: numerical integration of its density
over the action box, and a finite-difference change of variables."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sac import squashed_gaussian as sg

pytestmark = pytest.mark.unit


def _t(x) -> tf.Tensor:
    return tf.constant(np.asarray(x, np.float64))


def _box(low, high):
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return _t((high + low) / 2), _t((high - low) / 2)


@pytest.mark.parametrize("low, high, mean, log_std", [
    (-1.0, 1.0, 0.0, 0.0),
    (-2.0, 2.0, 0.7, -0.5),     # Pendulum's box
    (-1.0, 3.0, -0.4, 0.3),     # asymmetric bounds
    (0.0, 0.5, 1.2, -1.5),      # asymmetric, narrow, off-centre mean
])
def test_density_integrates_to_one_over_the_box_1d(low, high, mean, log_std):
    center, half = _box([low], [high])
    # Trapezoid rule on a fine grid of actions strictly inside the box (the density is 0 at the bounds).
    a = np.linspace(low, high, 400_001)[1:-1, None]
    logp = sg.log_prob(_t(a), _t([[mean]]), _t([[log_std]]), center, half).numpy()
    integral = np.trapezoid(np.exp(logp), a[:, 0])
    assert integral == pytest.approx(1.0, abs=2e-4)


def test_density_integrates_to_one_over_an_asymmetric_2d_box():
    low, high = np.array([-1.0, 0.0]), np.array([3.0, 0.5])
    center, half = _box(low, high)
    x = np.linspace(low[0], high[0], 3001)[1:-1]
    y = np.linspace(low[1], high[1], 3001)[1:-1]
    xx, yy = np.meshgrid(x, y, indexing="ij")
    a = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    logp = sg.log_prob(_t(a), _t([[0.3, -0.6]]), _t([[-0.2, 0.1]]), center, half).numpy().reshape(xx.shape)
    integral = np.trapezoid(np.trapezoid(np.exp(logp), y, axis=1), x)
    assert integral == pytest.approx(1.0, abs=2e-3)


def test_log_prob_matches_a_finite_difference_change_of_variables():
    rng = np.random.default_rng(0)
    low, high = np.array([-1.0, 0.0, -3.0]), np.array([3.0, 0.5, 1.0])
    center, half = _box(low, high)
    mean = rng.normal(size=(5, 3))
    log_std = rng.uniform(-2, 1, size=(5, 3))
    noise = rng.normal(size=(5, 3))
    u = mean + np.exp(log_std) * noise

    def squash(v):
        return (center + half * np.tanh(v)).numpy()

    # Independent reference: log N(u) - sum log |da/du|, with da/du by central differences.
    h = 1e-6
    jac = (squash(u + h) - squash(u - h)) / (2 * h)
    gauss = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gauss - np.log(jac), axis=-1)

    action, logp_sampled = sg.sample(_t(mean), _t(log_std), _t(noise), center, half)
    logp_inverse = sg.log_prob(action, _t(mean), _t(log_std), center, half)
    np.testing.assert_allclose(action.numpy(), squash(u), rtol=1e-12)
    np.testing.assert_allclose(logp_sampled.numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logp_inverse.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_stable_tanh_correction_equals_the_naive_formula_where_that_is_accurate():
    u = np.linspace(-5, 5, 101)
    naive = np.log(1 - np.tanh(u) ** 2)
    np.testing.assert_allclose(sg.log_one_minus_tanh_squared(_t(u)).numpy(), naive, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_log_prob_and_gradients_stay_finite_far_beyond_tanh_saturation_and_at_std_bounds(dtype):
    center, half = tf.constant([0.0, 1.0], dtype), tf.constant([1.0, 2.0], dtype)
    for mean_value in (-30.0, -21.0, 21.0, 30.0):
        for raw_std in (-1e3, 0.0, 1e3):   # log_std at LOG_STD_MIN, in between, at LOG_STD_MAX
            mean = tf.Variable(tf.fill([4, 2], tf.constant(mean_value, dtype)))
            raw = tf.Variable(tf.fill([4, 2], tf.constant(raw_std, dtype)))
            noise = tf.constant(np.random.default_rng(1).normal(size=(4, 2)), dtype)
            with tf.GradientTape() as tape:
                log_std = sg.bound_log_std(raw)
                action, logp = sg.sample(mean, log_std, noise, center, half)
                objective = tf.reduce_sum(logp) + tf.reduce_sum(action)
            grads = tape.gradient(objective, [mean, raw])
            assert np.all(np.isfinite(logp.numpy())), (mean_value, raw_std, logp.numpy())
            for g in grads:
                assert np.all(np.isfinite(g.numpy()))
    assert sg.bound_log_std(tf.constant(-1e3)).numpy() == pytest.approx(sg.LOG_STD_MIN)
    assert sg.bound_log_std(tf.constant(1e3)).numpy() == pytest.approx(sg.LOG_STD_MAX)


def test_actions_are_the_scaled_tanh_of_the_sample_and_saturate_exactly_at_the_bounds():
    low, high = np.array([-1.0, 0.0, -3.0], np.float32), np.array([3.0, 0.5, 1.0], np.float32)
    center, half = tf.constant((high + low) / 2), tf.constant((high - low) / 2)
    rng = np.random.default_rng(2)
    mean = rng.normal(scale=10, size=(10_000, 3)).astype(np.float32)
    log_std = sg.bound_log_std(tf.constant(rng.normal(scale=3, size=(10_000, 3)), tf.float32)).numpy()
    noise = rng.normal(size=(10_000, 3)).astype(np.float32)
    action = sg.sample(tf.constant(mean), tf.constant(log_std), tf.constant(noise), center, half)[0].numpy()
    # The mapping itself, against float64 numpy and without any clip: a wrong centre or scale would be
    # hidden by the final clip if the test only checked that actions lie in the box.
    expected = (high.astype(np.float64) + low) / 2 + (high.astype(np.float64) - low) / 2 * np.tanh(
        mean.astype(np.float64) + np.exp(log_std.astype(np.float64)) * noise)
    np.testing.assert_allclose(action, expected, rtol=1e-6, atol=1e-6)
    assert np.all(expected >= low) and np.all(expected <= high)
    unclipped = center.numpy() + half.numpy() * np.tanh(mean + np.exp(log_std) * noise)  # float32, as computed
    assert np.all(unclipped >= low) and np.all(unclipped <= high)  # the clip only guards rounding
    # The mean's image: the box's centre at 0, a known interior point at atanh(0.5), the bounds exactly
    # where tanh saturates.
    np.testing.assert_array_equal(sg.mode(tf.zeros([1, 3]), center, half).numpy()[0], (high + low) / 2)
    np.testing.assert_allclose(sg.mode(tf.fill([1, 3], float(np.arctanh(0.5))), center, half).numpy()[0],
                               (high + low) / 2 + 0.5 * (high - low) / 2, rtol=1e-6)
    np.testing.assert_array_equal(sg.mode(tf.fill([1, 3], 100.0), center, half).numpy()[0], high)
    np.testing.assert_array_equal(sg.mode(tf.fill([1, 3], -100.0), center, half).numpy()[0], low)
