"""The training state survives a save and a load whole: every variable of every network and
optimizer (the Keras 3 checkpoint trap in STACK.md), the replay buffer with its sampler, and the
env generators an episode starts from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint
from sac.agent import SACAgent
from sac.envs import make_vector_env
from sac.replay import ReplayBuffer

from .conftest import sac_settings

pytestmark = pytest.mark.unit

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([3.0, 0.5], np.float32)


def _batches(k: int, n: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(k, n, 5)).astype(np.float32),
            "action": rng.uniform(LOW, HIGH, size=(k, n, 2)).astype(np.float32),
            "reward": rng.normal(size=(k, n)).astype(np.float32),
            "next_obs": rng.normal(size=(k, n, 5)).astype(np.float32),
            "terminated": (rng.uniform(size=(k, n)) < 0.2).astype(np.float32)}


def _train(agent: SACAgent, batches: dict[str, np.ndarray]) -> dict:
    metrics, _, _ = agent.train_and_act(batches, np.zeros((1, 5), np.float32))
    return metrics


def _agent(seed: int) -> SACAgent:
    return SACAgent(5, LOW, HIGH, [16, 16], sac_settings(tau=0.1), seed=seed)


def test_every_variable_and_every_output_survives_a_save_and_load(tmp_path: Path):
    trained = _agent(seed=1)
    _train(trained, _batches(5))  # Adam moments, counters, targets and alpha all move away from init
    obs = np.random.default_rng(2).normal(size=(64, 5)).astype(np.float32)
    trained.policy.act(obs, stochastic=True)
    path = checkpoint.write_checkpoint(tmp_path, {"format": "x", "step": 5, "agent": trained.get_state()}, "state")
    restored = _agent(seed=99)  # different initial weights, so nothing matches by accident
    restored.set_state(checkpoint.read_payload(path)["agent"])

    saved, loaded = trained.get_state(), restored.get_state()
    counts = {group: len(values) for group, values in saved.items()}
    # actor: 3 layers x (W, b) (one output layer for mean and log-std); critics: 2 heads x 3 layers x (W, b)
    assert counts["actor"] == 6 and counts["critic"] == counts["target_critic"] == 12
    assert counts["actor_optimizer"] == 2 + 2 * 6 and counts["critic_optimizer"] == 2 + 2 * 12
    for group in saved:
        for a, b in zip(saved[group], loaded[group], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=group)
    # Outputs, not only arrays: a variable that is saved but not wired into the model would show here.
    np.testing.assert_array_equal(trained.policy.act(obs), restored.policy.act(obs))
    action = np.random.default_rng(3).uniform(LOW, HIGH, size=(64, 2)).astype(np.float32)
    for net in ("critic", "target_critic"):
        for q_a, q_b in zip(getattr(trained, net)(obs, action), getattr(restored, net)(obs, action)):
            np.testing.assert_array_equal(q_a.numpy(), q_b.numpy())
    # The optimizers' moments and the noise counters too: the next update and the next sampled
    # actions are identical.
    np.testing.assert_array_equal(trained.policy.act(obs, stochastic=True), restored.policy.act(obs, stochastic=True))
    m_a, m_b = _train(trained, _batches(2, seed=4)), _train(restored, _batches(2, seed=4))
    for name in m_a:
        assert float(m_a[name]) == float(m_b[name]), name
    for a, b in zip(trained.get_state()["actor"], restored.get_state()["actor"]):
        np.testing.assert_array_equal(a, b)


def test_a_state_that_does_not_fit_is_refused_by_name():
    state = _agent(seed=0).get_state()
    other = SACAgent(5, LOW, HIGH, [16, 8], sac_settings(), seed=0)
    with pytest.raises(ValueError, match="actor/.*shape"):
        other.set_state(state)


def _fill(buffer: ReplayBuffer, steps: int, seed: int = 0, episode: int = 7) -> None:
    rng = np.random.default_rng(seed)
    s = buffer.num_streams
    obs = rng.normal(size=(s, 3)).astype(np.float32)
    for t in range(steps):
        next_obs = rng.normal(size=(s, 3)).astype(np.float32)
        ended = np.full(s, (t + 1) % episode == 0)
        buffer.add_batch(obs, rng.normal(size=(s, 2)).astype(np.float32), rng.normal(size=s).astype(np.float32),
                         next_obs, ended & (t % 2 == 0), ended & (t % 2 == 1))
        obs = rng.normal(size=(s, 3)).astype(np.float32) if ended[0] else next_obs


@pytest.mark.parametrize("streams, capacity, steps, new_capacity", [
    (1, 50, 30, 50),  # partly filled
    (1, 50, 30, 80),  # partly filled, restored into a larger buffer (a run extended by total_steps)
    (2, 40, 45, 40),  # wrapped around, two streams
])
def test_the_replay_buffer_and_its_sampler_survive_a_save_and_load(tmp_path: Path, streams, capacity, steps,
                                                                      new_capacity):
    buffer = ReplayBuffer(capacity, 3, 2, seed=5, num_streams=streams)
    _fill(buffer, steps)
    buffer.sample_stack(1, 7)  # the sampler's generator has moved on
    path = checkpoint.write_checkpoint(tmp_path, {"step": steps, "replay": buffer.get_state()}, "state")
    restored = ReplayBuffer(new_capacity, 3, 2, seed=123, num_streams=streams)
    restored.set_state(checkpoint.read_payload(path)["replay"])
    assert len(restored) == len(buffer)
    for _ in range(3):  # same draws, same transitions, final observations included
        a, b = buffer.sample_stack(2, 64), restored.sample_stack(2, 64)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    _fill(buffer, 5, seed=9)  # and both go on identically
    _fill(restored, 5, seed=9)
    a, b = buffer.sample_stack(1, 64), restored.sample_stack(1, 64)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_wrapped_buffer_does_not_load_into_another_capacity():
    buffer = ReplayBuffer(20, 3, 2, seed=0)
    _fill(buffer, 30)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(30, 3, 2, seed=0).set_state(buffer.get_state())


def test_cutting_the_episode_under_way_keeps_its_last_transition_whole():
    buffer = ReplayBuffer(10, 3, 2, seed=0)
    _fill(buffer, 4, episode=100)  # mid-episode: the last transition's next observation is obs[4]
    last_next = buffer.gather(np.array([3]))["next_obs"][0].copy()
    buffer.mark_last_truncated()
    reset_obs = np.full((1, 3), 7.0, np.float32)
    buffer.add_batch(reset_obs, np.zeros((1, 2)), np.zeros(1), reset_obs + 1, np.zeros(1, bool), np.zeros(1, bool))
    got = buffer.gather(np.array([3, 4]))
    np.testing.assert_array_equal(got["next_obs"][0], last_next)  # not the reset observation
    assert buffer.truncated[3] and not buffer.terminated[3] and got["terminated"][0] == 0.0
    np.testing.assert_array_equal(got["obs"][1], reset_obs[0])


def test_an_episode_restarts_from_the_same_initial_state():
    envs = make_vector_env("Pendulum-v1", {}, 2)
    envs.reset(seed=11)
    for _ in range(200):  # through an autoreset, which draws from the env's generator
        obs, *_ = envs.step(envs.action_space.sample())
    starts = [env.episode_start for env in envs.envs]
    assert all("rng" in start for start in starts)
    fresh = make_vector_env("Pendulum-v1", {}, 2)
    for env, start in zip(fresh.envs, starts):
        env.restart_episode(start)
    np.testing.assert_array_equal(fresh.reset()[0], obs)  # the observation after the autoreset
    seeded = make_vector_env("Pendulum-v1", {}, 1)
    first = seeded.reset(seed=3)[0]
    again = make_vector_env("Pendulum-v1", {}, 1)
    again.envs[0].restart_episode(seeded.envs[0].episode_start)
    np.testing.assert_array_equal(again.reset()[0], first)


def test_a_stopped_runs_metrics_are_rewritten_to_exactly_the_recorded_ones(tmp_path: Path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sac.metrics import MetricsLogger, rewrite_run_metrics

    class Run:  # Sacred's side, as a plain list
        def __init__(self):
            self.logged = []

        def log_scalar(self, name, value, step):
            self.logged.append((name, value, step))

    logger = MetricsLogger(Run(), tmp_path, total_steps=100)
    for step in range(10, 101, 10):
        logger.scalars({"a": step / 10, "b": -step}, step)
    record = logger.record()
    for step in range(110, 151, 10):  # logged after the checkpoint, then the process died
        logger.scalar("a", step / 10, step)
    logger.close()
    (tmp_path / "metrics.json").write_text(json.dumps({"a": {"steps": [10, 110], "values": [1, 11],
                                                             "timestamps": ["x", "y"]}}))
    rewrite_run_metrics(tmp_path, {name: [tuple(e) for e in entries] for name, entries in record["history"].items()})
    rewrite_run_metrics(tmp_path, {name: [tuple(e) for e in entries] for name, entries in record["history"].items()})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["a"]["steps"] == list(range(10, 101, 10)) and metrics["a"]["values"] == [s / 10 for s in range(10, 101, 10)]
    assert metrics["b"]["values"] == [-s for s in range(10, 101, 10)]
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1 and not list(tmp_path.glob(".*"))
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.step for e in acc.Scalars("a")] == list(range(10, 101, 10))
    assert [e.value for e in acc.Scalars("b")] == [-s for s in range(10, 101, 10)]
