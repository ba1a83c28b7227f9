"""Recurrent agents in whole runs: checkpoint and training-state round trips compared over whole
episodes, the command line (train, play, exact resume, mirrored), and memory itself: a task whose
decisive observation appears only at an episode's first step."""
from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from sac import checkpoint
from sac.builder import build_run
from sac.config import run_config
from sac.policy import load_policy

from .conftest import assert_play_output, read_metrics, run_cli, train

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1"}
SMALL = dict(env_id="Pendulum-P-v0", actor_network="lstm", critic_network="gru", rnn_units=16, hidden_sizes=[32, 32],
             sequence_length=8, burn_in=2, batch_size=16, total_steps=600, learning_starts=300, eval_every=300,
             eval_episodes=2, checkpoint_every=300, log_every=100)


def _episode(policy, seed: int, env_id: str = "Pendulum-P-v0") -> tuple[np.ndarray, np.ndarray]:
    """The observations and deterministic actions of one whole episode (200 steps) from the env's
    seeded start."""
    import sac.envs  # noqa: F401  (registers the POMDP tasks)

    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    observations, actions, done = [], [], False
    while not done:
        observations.append(obs)
        actions.append(policy.act(obs))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        done = terminated or truncated
    return np.array(observations), np.array(actions)


def _replayed(policy, observations: np.ndarray) -> np.ndarray:
    """The policy's actions for a given episode's observations, its state carried along."""
    policy.reset()
    return np.array([policy.act(obs) for obs in observations])


@pytest.mark.unit
def test_checkpoint_and_training_state_round_trips_act_alike_over_a_whole_episode(tmp_path: Path):
    parts = build_run(run_config(**SMALL), run_dir=tmp_path, stream=io.StringIO())
    final = parts.train()
    observations, reference = _episode(parts.agent.policy, seed=11)
    assert len(reference) == 200 and np.ptp(reference) > 0.0
    # Without its state the policy would act otherwise on the same observations.
    assert not np.allclose(parts.agent.policy.act_with_state(
        observations[1:], parts.agent.policy.initial_state(199), np.ones(199, bool))[0], reference[1:], atol=1e-3)

    loaded = load_policy(tmp_path)  # model-600.pkl: rebuilt from plain data, no training state
    assert loaded.recurrent and loaded.step == 600
    # (the loaded policy runs without XLA: float32 round-off apart, the same actions)
    np.testing.assert_allclose(_replayed(loaded, observations), reference, atol=1e-5)

    _, payload = checkpoint.load_newest_state(tmp_path / "checkpoints")
    again = build_run(run_config(**SMALL), run_dir=None, stream=io.StringIO())
    loop_state = again.restore(payload, tmp_path / "checkpoints" / "state-600.pkl")
    np.testing.assert_array_equal(_episode(again.agent.policy, seed=11)[1], reference)
    # The acting state (previous actions, LSTM h and c) and first-step flags come back exactly.
    assert len(loop_state.acting_state) == 3
    for x, y in zip(loop_state.acting_state, final.acting_state, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(loop_state.first, final.first)
    # What the next update would do is the same too (weights, optimizers, noise counters, sampler).
    a = parts.agent.train_and_act(parts.buffer.sample_sequence_stack(1, 16, 8, 2), np.zeros((1, 2), np.float32))
    b = again.agent.train_and_act(again.buffer.sample_sequence_stack(1, 16, 8, 2), np.zeros((1, 2), np.float32))
    assert {k: float(v) for k, v in a[0].items()} == {k: float(v) for k, v in b[0].items()}
    np.testing.assert_array_equal(a[1], b[1])
    parts.close()
    again.close()


def _cli(**entries) -> list[str]:
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in entries.items()]


@pytest.mark.smoke
def test_a_recurrent_run_trains_plays_and_resumes_exactly_after_kill_9(tmp_path: Path):
    """lstm actor, gru critic from the command line; kill -9 at step 700 (after the state of step
    400, which holds the acting state of an episode's first observation); resume= ends exactly
    like the run left alone."""
    entries = {**SMALL, "env_id": "tests.custom_envs:SignalsItself-v0", "total_steps": 800, "checkpoint_every": 400,
               "eval_every": 400, "seed": 4}
    (tmp_path / "alone").mkdir()
    alone = train(tmp_path / "alone", *_cli(**entries), 'env_kwargs={"at_step": 0}', env=CPU_ONLY)
    assert read_metrics(alone)["eval/return_mean"]["steps"] == [400, 800]
    played = run_cli(["-m", "sac.play", str(alone), "--no-render", "--episodes", "2"], tmp_path)
    assert_play_output(played, alone / "checkpoints" / "model-800.pkl", episodes=2)

    cwd = tmp_path / "killed"
    (cwd / "runs").mkdir(parents=True)
    killed = run_cli(["-m", "sac.train", "with", *_cli(**entries),
                      'env_kwargs={"at_step": 700, "signals": ["SIGKILL"]}'], cwd, env=CPU_ONLY)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = checkpoint.load_newest_state(cwd / "runs" / "1" / "checkpoints")[1]
    assert state["step"] == 400 and len(state["loop"]["acting_state"]) == 3
    assert np.abs(state["loop"]["acting_state"][1]).max() > 0.0  # an LSTM state that matters
    resumed = run_cli(["-m", "sac.train", "with", "resume=runs/1"], cwd, env=CPU_ONLY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = checkpoint.load_newest_state(alone / "checkpoints")[1]["agent"]
    b = checkpoint.load_newest_state(cwd / "runs" / "2" / "checkpoints")[1]["agent"]
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)


@pytest.mark.smoke
def test_a_recurrent_run_under_mirrored_with_two_cpu_replicas(tmp_path: Path):
    run = train(tmp_path, *_cli(**{**SMALL, "total_steps": 400, "learning_starts": 200, "eval_every": 400,
                                   "checkpoint_every": 400}), "strategy=mirrored", "cpu_replicas=2",
                env=CPU_ONLY)
    metrics = read_metrics(run)
    assert metrics["loss/critic"]["steps"] == [300, 400] and all(np.isfinite(metrics["loss/critic"]["values"]))
    state = checkpoint.load_newest_state(run / "checkpoints")[1]
    assert int(state["agent"]["scalars"][1]) == 200  # 200 updates, on sequences, split over 2 replicas


@pytest.mark.learning
def test_memory_reaches_from_the_first_step_across_the_episode(tmp_path: Path):
    """MemoryCue-v0: the cue is observed at step 0 only and pays at all 8 steps. Recurrent actor
    and critic learn to remember it (eval return > 5 of 8 at 6,000 steps); the MLP agent cannot do
    better than the first step plus chance (< 2.5)."""
    common = dict(env_id="MemoryCue-v0", total_steps=6000, learning_starts=500, eval_every=6000, log_every=6000,
                  checkpoint_every=6000, hidden_sizes=[64, 64], rnn_units=32, sequence_length=8, gamma=0.9,
                  num_threads=0)
    returns = {}
    for network in ("lstm", "mlp"):
        parts = build_run(run_config(**common, actor_network=network, critic_network=network), run_dir=None,
                          stream=io.StringIO())
        parts.train()
        returns[network] = parts.logger.record()["history"]["eval/return_mean"][-1][1]
        parts.close()
    assert returns["lstm"] > 5.0 and returns["mlp"] < 2.5, returns
