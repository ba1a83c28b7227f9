"""The compiled update: each of its three gradient steps moves only its own variables, the target
critics move only by Polyak averaging, and acting respects the action box."""
from __future__ import annotations

import numpy as np
import pytest

from sac.agent import SACAgent, SACSettings

pytestmark = pytest.mark.unit

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([3.0, 0.5], np.float32)


def _batch(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(n, 5)).astype(np.float32),
            "action": rng.uniform(LOW, HIGH, size=(n, 2)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, 5)).astype(np.float32),
            "terminated": (rng.uniform(size=n) < 0.2).astype(np.float32)}


def _snapshot(agent: SACAgent) -> dict[str, list[np.ndarray]]:
    return {"actor": agent.actor.get_weights(), "critic": agent.critic.get_weights(),
            "target": agent.target_critic.get_weights(), "log_alpha": [np.array(agent.log_alpha.numpy())]}


def _changed(before, after) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize("learning", ["critic", "actor", "alpha"])
def test_each_optimizer_updates_only_its_own_variables(learning):
    # A zero learning rate freezes a part; only `learning` may move (and the target through Polyak).
    settings = SACSettings(actor_lr=3e-3 if learning == "actor" else 0.0,
                           critic_lr=3e-3 if learning == "critic" else 0.0,
                           alpha_lr=3e-3 if learning == "alpha" else 0.0, tau=0.1, target_entropy=-1.0)
    agent = SACAgent(5, LOW, HIGH, [16, 16], settings, seed=0, jit_compile=False)
    agent.critic.set_weights([w + 0.01 for w in agent.critic.get_weights()])  # critic != target
    before = _snapshot(agent)
    agent.update(_batch())
    after = _snapshot(agent)
    assert _changed(before["actor"], after["actor"]) == (learning == "actor")
    assert _changed(before["critic"], after["critic"]) == (learning == "critic")
    assert _changed(before["log_alpha"], after["log_alpha"]) == (learning == "alpha")
    # Target critics: exactly (1 - tau) * old target + tau * the critic after its step.
    for t0, c1, t1 in zip(before["target"], after["critic"], after["target"]):
        np.testing.assert_allclose(t1, 0.9 * t0 + 0.1 * c1, rtol=1e-5, atol=1e-6)


def test_fixed_temperature_is_never_updated():
    agent = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(learn_alpha=False, initial_alpha=0.2), seed=0,
                     jit_compile=False)
    for _ in range(3):
        metrics = agent.update(_batch())
    assert float(metrics["alpha"]) == pytest.approx(0.2)
    assert "loss/alpha" not in metrics


def test_update_metrics_are_finite_and_acting_stays_in_the_box():
    agent = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=0)
    metrics = agent.update(_batch())
    assert set(metrics) == {"loss/critic", "loss/actor", "loss/alpha", "alpha", "policy/entropy", "q/mean"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    obs = np.random.default_rng(3).normal(scale=100, size=(500, 5)).astype(np.float32)
    for deterministic in (False, True):
        actions = agent.act(obs, deterministic=deterministic)
        assert actions.shape == (500, 2) and actions.dtype == np.float32
        assert np.all(actions >= LOW) and np.all(actions <= HIGH)


def test_the_noise_follows_the_seed_same_seed_same_updates_other_seed_other_updates():
    """Agents that start from the same weights and differ only in the seed of their noise streams."""
    start = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=1, jit_compile=False)
    initial = [net.get_weights() for net in (start.actor, start.critic, start.target_critic)]

    def run(seed):
        agent = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=seed, jit_compile=False)
        for net, weights in zip((agent.actor, agent.critic, agent.target_critic), initial):
            net.set_weights(weights)
        for i in range(3):
            agent.update(_batch(seed=i))
        return agent.actor.get_weights(), agent.act(_batch()["obs"][:4])

    (after_first, acts_first), (after_again, acts_again), (after_other, acts_other) = run(1), run(1), run(2)
    assert not _changed(after_first, after_again)
    np.testing.assert_array_equal(acts_first, acts_again)
    assert _changed(after_first, after_other)
    assert not np.array_equal(acts_first, acts_other)


def test_fused_train_and_act_equals_separate_update_then_act():
    """The training loop's one call per step does exactly what an update followed by an action does."""
    fused = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=4)
    separate = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=4)
    obs = _batch()["obs"][:1]
    for i in range(20):
        batch = _batch(seed=i)
        stacked = {k: v[None] for k, v in batch.items()}
        metrics_fused, action_fused = fused.train_and_act(stacked, obs)
        metrics_separate = separate.update(batch)
        action_separate = separate.act(obs)
        np.testing.assert_allclose(action_fused, action_separate, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(metrics_fused["loss/critic"]), float(metrics_separate["loss/critic"]),
                                   rtol=1e-5)
    for a, b in zip(fused.actor.get_weights() + fused.critic.get_weights(),
                    separate.actor.get_weights() + separate.critic.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_update_many_makes_exactly_k_updates_in_order():
    many = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=5, jit_compile=False)
    one_by_one = SACAgent(5, LOW, HIGH, [16, 16], SACSettings(target_entropy=-1.0), seed=5, jit_compile=False)
    batches = [_batch(seed=i) for i in range(4)]
    many.update_many({k: np.stack([b[k] for b in batches]) for k in batches[0]})
    for b in batches:
        one_by_one.update(b)
    assert int(many.update_counter.numpy()) == 4
    for a, b in zip(many.actor.get_weights(), one_by_one.actor.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
