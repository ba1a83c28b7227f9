"""The training loop in-process: what it stores, how many updates it makes, when it evaluates and
checkpoints."""
from __future__ import annotations

import io

import numpy as np
import pytest

from sac.agent import SACAgent, SACSettings
from sac.envs import make_env, observation_dim
from sac.loop import Schedule, train_loop
from sac.metrics import MetricsLogger
from sac.replay import ReplayBuffer
from sac.seeding import RunSeeds

pytestmark = pytest.mark.unit

ENV_ID = "tests.custom_envs:DictObservation-v0"  # truncated (time limit) after 20 steps, never terminated


def test_time_limit_ends_are_stored_as_truncated_updates_start_after_warm_up_and_phases_fire_on_time():
    env, eval_env = make_env(ENV_ID), make_env(ENV_ID)
    obs_dim, low, high = observation_dim(env.observation_space), env.action_space.low, env.action_space.high
    agent = SACAgent(obs_dim, low, high, [8], SACSettings(target_entropy=-1.0), seed=0, jit_compile=False)
    buffer = ReplayBuffer(100, obs_dim, low.shape[0], seed=0)
    logger = MetricsLogger(None, None, total_steps=50, stream=io.StringIO())
    schedule = Schedule(total_steps=50, learning_starts=30, batch_size=8, eval_every=20, eval_episodes=2,
                        checkpoint_every=25, log_every=10)
    saved: list[int] = []
    train_loop(env=env, eval_env=eval_env, agent=agent, buffer=buffer, schedule=schedule,
               seeds=RunSeeds.from_seed(0), logger=logger, save_checkpoint=saved.append)

    assert len(buffer) == 50
    np.testing.assert_array_equal(np.flatnonzero(buffer.truncated[:50]), [19, 39])
    assert not buffer.terminated[:50].any()  # a time limit never cuts the bootstrap
    assert int(agent.update_counter.numpy()) == 20  # steps 31..50, one update each
    assert saved == [25, 50]
    assert [s for s, _ in logger.history["eval/return_mean"]] == [20, 40, 50]
    assert [s for s, _ in logger.history["train/episode_return"]] == [20, 40]
    assert [s for s, _ in logger.history["loss/critic"]] == [40, 50]
    # The flattened Dict observation (2 + 3 entries) reached the buffer.
    assert buffer.obs.shape[1] == 5 and np.abs(buffer.obs[:50]).sum() > 0
