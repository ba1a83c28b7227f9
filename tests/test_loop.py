"""The training loop in-process: what it stores, how many updates it makes, when it evaluates and
checkpoints, with one env or several and with the update-schedule options."""
from __future__ import annotations

import io

import numpy as np
import pytest

from sac.agent import SACAgent, SACSettings
from sac.envs import make_vector_env, observation_dim
from sac.loop import Schedule, train_loop
from sac.metrics import MetricsLogger
from sac.replay import ReplayBuffer
from sac.seeding import RunSeeds

pytestmark = pytest.mark.unit

ENV_ID = "tests.custom_envs:DictObservation-v0"  # truncated (time limit) after 20 steps, never terminated


def _train(total_steps=50, learning_starts=30, num_envs=1, train_every=1, gradient_steps=1, eval_every=20,
           checkpoint_every=25, log_every=10):
    envs, eval_envs = make_vector_env(ENV_ID, {}, num_envs), make_vector_env(ENV_ID, {}, 2)
    space = envs.single_action_space
    obs_dim = observation_dim(envs.single_observation_space)
    agent = SACAgent(obs_dim, space.low, space.high, [8], SACSettings(target_entropy=-1.0), seed=0,
                     jit_compile=False)
    buffer = ReplayBuffer(100, obs_dim, space.low.shape[0], seed=0, num_streams=num_envs)
    logger = MetricsLogger(None, None, total_steps=total_steps, stream=io.StringIO())
    schedule = Schedule(total_steps=total_steps, learning_starts=learning_starts, batch_size=8,
                        eval_every=eval_every, checkpoint_every=checkpoint_every,
                        log_every=log_every, train_every=train_every, gradient_steps=gradient_steps)
    saved: list[int] = []
    train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule,
               seeds=RunSeeds.from_seed(0), logger=logger,
               save_checkpoint=lambda step, _state: saved.append(step))
    return agent, buffer, logger, saved


def _steps(logger, name):
    return [entry[0] for entry in logger.history.get(name, [])]


def test_time_limit_ends_are_stored_as_truncated_updates_start_after_warm_up_and_phases_fire_on_time():
    agent, buffer, logger, saved = _train()
    assert len(buffer) == 50
    np.testing.assert_array_equal(np.flatnonzero(buffer.truncated[:50]), [19, 39])
    assert not buffer.terminated[:50].any()  # a time limit never cuts the bootstrap
    assert int(agent.update_counter.numpy()) == 20  # steps 31..50, one update each
    assert saved == [25, 50]
    assert _steps(logger, "eval/return_mean") == [20, 40, 50]
    assert _steps(logger, "train/episode_return") == [20, 40]
    assert _steps(logger, "loss/critic") == [40, 50]
    # The flattened Dict observation (2 + 3 entries) reached the buffer.
    assert buffer.obs.shape[1] == 5 and np.abs(buffer.obs[:50]).sum() > 0


@pytest.mark.parametrize("train_every, gradient_steps, expected_updates", [
    (1, 1, 20),   # the default: one per step after learning_starts
    (1, 3, 60),   # UTD 3
    (4, 1, 5),    # one update every 4 steps
    (5, 10, 40),  # 10 updates every 5 steps: UTD 2
])
def test_gradient_steps_and_train_every_make_exactly_the_updates_asked_for(train_every, gradient_steps,
                                                                           expected_updates):
    agent, *_ = _train(train_every=train_every, gradient_steps=gradient_steps)
    assert int(agent.update_counter.numpy()) == expected_updates


def test_vector_envs_store_every_transition_of_every_env_and_count_steps_over_all():
    agent, buffer, logger, saved = _train(total_steps=60, learning_starts=20, num_envs=3)
    assert len(buffer) == 60  # 20 iterations x 3 envs
    # Each env's stream: 20 transitions, the 20th truncated by the time limit.
    per_stream = buffer.truncated.reshape(3, -1)[:, :20]
    np.testing.assert_array_equal(np.flatnonzero(per_stream.any(axis=0)), [19])
    assert per_stream[:, 19].all()
    assert int(agent.update_counter.numpy()) == 40  # one per transition after step 20
    assert _steps(logger, "train/episode_return") == [60, 60, 60]
    assert _steps(logger, "eval/return_mean") == [21, 42, 60]  # the first iteration at or past each multiple
    assert saved == [27, 51, 60]


def _parts(num_envs: int, total_steps: int, schedule_kwargs: dict, seed: int = 0):
    envs, eval_envs = make_vector_env(ENV_ID, {}, num_envs), make_vector_env(ENV_ID, {}, 2)
    space = envs.single_action_space
    obs_dim = observation_dim(envs.single_observation_space)
    agent = SACAgent(obs_dim, space.low, space.high, [8], SACSettings(target_entropy=-1.0), seed=seed,
                     jit_compile=False)
    buffer = ReplayBuffer(200, obs_dim, space.low.shape[0], seed=seed, num_streams=num_envs)
    logger = MetricsLogger(None, None, total_steps=total_steps, stream=io.StringIO())
    schedule = Schedule(total_steps=total_steps, batch_size=8, **schedule_kwargs)
    return envs, eval_envs, agent, buffer, logger, schedule


@pytest.mark.parametrize("num_envs, train_every, gradient_steps", [(1, 1, 1), (2, 3, 2)])
def test_a_loop_stopped_between_episodes_and_resumed_equals_the_loop_left_alone(num_envs, train_every,
                                                                                  gradient_steps):
    from sac import training_state

    total, stop_at = 160, 80  # 20-step episodes: step 80 is between episodes for 1 or 2 envs
    kwargs = dict(learning_starts=30, eval_every=40, checkpoint_every=1000, log_every=10,
                  train_every=train_every, gradient_steps=gradient_steps)
    seeds = RunSeeds.from_seed(0)

    envs, eval_envs, agent, buffer, logger, schedule = _parts(num_envs, total, kwargs)
    train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule, seeds=seeds,
               logger=logger, save_checkpoint=lambda step, state: None)
    alone_agent, alone_logger = agent, logger

    # First part: a stop request at step 80 (as a SIGTERM handler would make); the state is captured
    # the way sac.train saves it.
    envs, eval_envs, agent, buffer, logger, schedule = _parts(num_envs, total, kwargs)
    saved = {}

    def save(step, loop_state):
        saved["payload"] = training_state.capture(
            config={"env_id": ENV_ID}, agent=agent, buffer=buffer, envs=envs,
            loop_state=loop_state, metrics_record=logger.record(), observation_shape=(5,))

    stopped = train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule, seeds=seeds,
                         logger=logger, save_checkpoint=save, stop_requested=lambda: logger_step(logger) >= stop_at)
    assert stopped.step == stop_at and saved["payload"]["step"] == stop_at
    first_logger = logger

    # Second part: fresh objects (other seeds, so nothing matches by accident), restored, resumed.
    envs, eval_envs, agent, buffer, logger, schedule = _parts(num_envs, total, kwargs, seed=7)
    resume = training_state.restore(saved["payload"], agent=agent, buffer=buffer, envs=envs)
    final = train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule, seeds=seeds,
                       logger=logger, save_checkpoint=lambda step, state: None, resume=resume)
    assert final.step == total

    a, b = alone_agent.get_state(), agent.get_state()
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)
    for name, entries in alone_logger.history.items():
        if name == "train/steps_per_second":
            continue
        joined = first_logger.history.get(name, []) + logger.history.get(name, [])
        assert [(s, v) for s, v, _ in joined] == [(s, v) for s, v, _ in entries], name


def logger_step(logger) -> int:
    """The step of the latest logged progress (the loop logs steps/s every log_every steps)."""
    entries = logger.history.get("train/steps_per_second", [])
    return entries[-1][0] if entries else 0
