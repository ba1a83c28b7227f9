"""The compiled training call (`train_and_act`, the loop's one call per step): each of its three
gradient steps moves only its own variables, the target critics move only by Polyak averaging, K
stacked batches equal K calls, and the policy's actions are the squashed Gaussian's mapping."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sac.agent import SACAgent
from sac.noise import seed_pair

from .conftest import sac_settings

pytestmark = pytest.mark.unit

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([3.0, 0.5], np.float32)
OBS = np.random.default_rng(9).normal(size=(4, 5)).astype(np.float32)


def _batch(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(n, 5)).astype(np.float32),
            "action": rng.uniform(LOW, HIGH, size=(n, 2)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, 5)).astype(np.float32),
            "terminated": (rng.uniform(size=n) < 0.2).astype(np.float32)}


def _update(agent: SACAgent, batch: dict[str, np.ndarray]) -> dict:
    """One gradient step through the loop's own path (K = 1 stacked batch)."""
    metrics, _, _ = agent.train_and_act({k: v[None] for k, v in batch.items()}, OBS)
    return metrics


def _snapshot(agent: SACAgent) -> dict[str, list[np.ndarray]]:
    return {"actor": agent.actor.get_weights(), "critic": agent.critic.get_weights(),
            "target": agent.target_critic.get_weights(), "log_alpha": [np.array(agent.log_alpha.numpy())]}


def _changed(before, after) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before, after))


def _reference_actions(agent: SACAgent, obs: np.ndarray, counter: int | None, jit_compile: bool) -> np.ndarray:
    """center + half_range * tanh(mean + std * noise) in float64 numpy, from the actor's raw outputs,
    with the noise the policy draws at `counter` (None: the squashed mean). No clip. (XLA draws
    stateless normals with another algorithm than the plain kernels: the noise is drawn the same way.)"""
    mean, log_std = (t.numpy().astype(np.float64) for t in agent.actor(obs))
    u = mean
    if counter is not None:
        seed = seed_pair(agent.policy.noise_key, tf.constant(counter, tf.int64))
        draw = tf.function(lambda: tf.random.stateless_normal([obs.shape[0], 2], seed=seed), jit_compile=jit_compile)
        u = mean + np.exp(log_std) * draw().numpy().astype(np.float64)
    center, half = (HIGH.astype(np.float64) + LOW) / 2, (HIGH.astype(np.float64) - LOW) / 2
    return center + half * np.tanh(u)


@pytest.mark.parametrize("learning", ["critic", "actor", "alpha"])
def test_each_optimizer_updates_only_its_own_variables(learning):
    # A zero learning rate freezes a part; only `learning` may move (and the target through Polyak).
    settings = sac_settings(actor_lr=3e-3 if learning == "actor" else 0.0,
                            critic_lr=3e-3 if learning == "critic" else 0.0,
                            alpha_lr=3e-3 if learning == "alpha" else 0.0, tau=0.1)
    agent = SACAgent(5, LOW, HIGH, [16, 16], settings, seed=0, jit_compile=False)
    agent.critic.set_weights([w + 0.01 for w in agent.critic.get_weights()])  # critic != target
    before = _snapshot(agent)
    _update(agent, _batch())
    after = _snapshot(agent)
    assert _changed(before["actor"], after["actor"]) == (learning == "actor")
    assert _changed(before["critic"], after["critic"]) == (learning == "critic")
    assert _changed(before["log_alpha"], after["log_alpha"]) == (learning == "alpha")
    # Target critics: exactly (1 - tau) * old target + tau * the critic after its step.
    for t0, c1, t1 in zip(before["target"], after["critic"], after["target"]):
        np.testing.assert_allclose(t1, 0.9 * t0 + 0.1 * c1, rtol=1e-5, atol=1e-6)


def test_fixed_temperature_is_never_updated():
    agent = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(-0.5, learn_alpha=False, initial_alpha=0.2), seed=0,
                     jit_compile=False)
    for _ in range(3):
        metrics = _update(agent, _batch())
    assert float(metrics["alpha"]) == pytest.approx(0.2)
    assert "loss/alpha" not in metrics


@pytest.mark.parametrize("jit_compile", [True, False])
def test_actions_are_the_squashed_gaussian_mapping_not_a_clip(jit_compile):
    agent = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(), seed=0, jit_compile=jit_compile)
    metrics = _update(agent, _batch())
    assert set(metrics) == {"loss/critic", "loss/actor", "loss/alpha", "alpha", "policy/entropy", "q/mean"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # Observations of moderate size keep tanh away from 1, so the box's clip does nothing here: a wrong
    # scale or centre shows as a mismatch against the independent float64 reference.
    obs = np.random.default_rng(3).normal(size=(500, 5)).astype(np.float32)
    mode = agent.policy.act(obs)
    assert mode.shape == (500, 2) and mode.dtype == np.float32
    np.testing.assert_allclose(mode, _reference_actions(agent, obs, None, jit_compile), rtol=1e-5, atol=1e-5)
    counter = int(agent.policy.noise_counter.numpy())
    sampled = agent.policy.act(obs, stochastic=True)
    reference = _reference_actions(agent, obs, counter, jit_compile)
    np.testing.assert_allclose(sampled, reference, rtol=1e-5, atol=1e-5)
    assert np.all(reference > LOW) and np.all(reference < HIGH)  # inside without any clip
    assert int(agent.policy.noise_counter.numpy()) == counter + 1
    # One observation gives one action; the fused call's actions follow the same mapping.
    np.testing.assert_allclose(agent.policy.act(obs[0]), mode[0], rtol=1e-6, atol=1e-6)
    counter = int(agent.policy.noise_counter.numpy())
    _, fused_actions, _ = agent.train_and_act({k: v[None] for k, v in _batch(seed=1).items()}, obs[:7])
    np.testing.assert_allclose(fused_actions, _reference_actions(agent, obs[:7], counter, jit_compile), rtol=1e-5, atol=1e-5)


def test_the_noise_follows_the_seed_same_seed_same_updates_other_seed_other_updates():
    """Agents that start from the same weights and differ only in the seed of their noise streams."""
    start = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(), seed=1, jit_compile=False)
    initial = [net.get_weights() for net in (start.actor, start.critic, start.target_critic)]

    def run(seed):
        agent = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(), seed=seed, jit_compile=False)
        for net, weights in zip((agent.actor, agent.critic, agent.target_critic), initial):
            net.set_weights(weights)
        for i in range(3):
            _update(agent, _batch(seed=i))
        return agent.actor.get_weights(), agent.policy.act(_batch()["obs"][:4], stochastic=True)

    (after_first, acts_first), (after_again, acts_again), (after_other, acts_other) = run(1), run(1), run(2)
    assert not _changed(after_first, after_again)
    np.testing.assert_array_equal(acts_first, acts_again)
    assert _changed(after_first, after_other)
    assert not np.array_equal(acts_first, acts_other)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_k_stacked_batches_make_exactly_k_updates_in_order(jit_compile):
    many = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(), seed=5, jit_compile=jit_compile)
    one_by_one = SACAgent(5, LOW, HIGH, [16, 16], sac_settings(), seed=5, jit_compile=jit_compile)
    batches = [_batch(seed=i) for i in range(4)]
    metrics_many, _, _ = many.train_and_act({k: np.stack([b[k] for b in batches]) for k in batches[0]}, OBS)
    for b in batches:
        metrics_one = _update(one_by_one, b)
    assert int(many.update_counter.numpy()) == int(one_by_one.update_counter.numpy()) == 4
    np.testing.assert_allclose(float(metrics_many["loss/critic"]), float(metrics_one["loss/critic"]), rtol=1e-5)
    for a, b in zip(many.get_state()["actor"] + many.get_state()["critic"] + many.get_state()["target_critic"],
                    one_by_one.get_state()["actor"] + one_by_one.get_state()["critic"]
                    + one_by_one.get_state()["target_critic"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
