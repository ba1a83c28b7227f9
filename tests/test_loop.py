"""The training loop in-process: what it stores, how many updates it makes, when it evaluates and
checkpoints, with one env or several and with the update-schedule options."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf

from sac.builder import build_run
from sac.config import run_config
from sac.seeding import RunSeeds

pytestmark = pytest.mark.unit

ENV_ID = "tests.custom_envs:DictObservation-v0"  # truncated (time limit) after 20 steps, never terminated


def _parts(total_steps=50, learning_starts=30, num_envs=1, train_every=1, gradient_steps=1, eval_every=20,
           checkpoint_every=25, log_every=10, buffer_size=100, seed=0, env_id=ENV_ID, **overrides):
    """A run's parts from the same builder sac.train uses (no run directory: no files)."""
    config = run_config(env_id=env_id, seed=seed, total_steps=total_steps, learning_starts=learning_starts,
                        num_envs=num_envs, train_every=train_every, gradient_steps=gradient_steps,
                        eval_every=eval_every, eval_episodes=2, checkpoint_every=checkpoint_every,
                        log_every=log_every, buffer_size=buffer_size, batch_size=8, hidden_sizes=[8],
                        target_entropy=-1.0, jit_compile=False, **overrides)
    return build_run(config, run_dir=None, stream=io.StringIO())


def _train(**kwargs):
    parts = _parts(**kwargs)
    saved: list[int] = []
    parts.train(save_checkpoint=lambda step, _state: saved.append(step))
    return parts.agent, parts.buffer, parts.logger, saved


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


def test_a_true_end_is_stored_as_terminated_every_end_keeps_its_final_observation_and_rewards_stay_raw():
    # EndsBothWays observes [t, episode]: episode 0 terminates after 7 steps (slots 0-6), episode 1
    # is truncated by its time limit after 20 (slots 7-26), episode 2 fills slots 27-39. The vector
    # env has already reset an ended env, so the loop must store the final observation it reports,
    # not the reset one; and reward_scale belongs to the TD target, not to what the buffer keeps.
    agent, buffer, _, _ = _train(env_id="tests.custom_envs:EndsBothWays-v0", total_steps=40, eval_every=40,
                                 checkpoint_every=40, reward_scale=0.1)
    assert len(buffer) == 40 and int(agent.update_counter.numpy()) == 10
    np.testing.assert_array_equal(np.flatnonzero(buffer.terminated[:40]), [6])
    np.testing.assert_array_equal(np.flatnonzero(buffer.truncated[:40]), [26])
    batch = buffer.gather(np.array([5, 6, 7, 26, 27]))
    np.testing.assert_array_equal(batch["obs"], [[5, 0], [6, 0], [0, 1], [19, 1], [0, 2]])
    np.testing.assert_array_equal(batch["next_obs"], [[6, 0], [7, 0], [1, 1], [20, 1], [1, 2]])
    np.testing.assert_array_equal(batch["terminated"], [0, 1, 0, 0, 0])
    # The toy's reward is -|a|^2 of the action it was given: stored unscaled, beside that action.
    np.testing.assert_allclose(buffer.reward[:40], -np.sum(np.square(buffer.action[:40]), axis=1), rtol=1e-6)
    assert buffer.reward[:40].min() < -0.1  # actions large enough that a 0.1 scale would show


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


@pytest.mark.parametrize("num_envs, train_every, gradient_steps", [(1, 1, 1), (2, 3, 2)])
def test_a_loop_stopped_between_episodes_and_resumed_equals_the_loop_left_alone(num_envs, train_every,
                                                                                  gradient_steps):
    from sac import training_state

    total, stop_at = 160, 80  # 20-step episodes: step 80 is between episodes for 1 or 2 envs
    kwargs = dict(total_steps=total, learning_starts=30, eval_every=40, checkpoint_every=1000, log_every=10,
                  train_every=train_every, gradient_steps=gradient_steps, num_envs=num_envs, buffer_size=200)

    with tf.device("/CPU:0"):  # exact equality is a CPU promise (README): pinned where a GPU is seen
        alone = _parts(**kwargs)
        alone.train()

        # First part: a stop request at step 80 (as a SIGTERM handler would make); the state is captured
        # the way sac.train's checkpoint writer captures it.
        first = _parts(**kwargs)
        saved = {}

        def save(step, loop_state):
            saved["payload"] = training_state.capture(
                config={"env_id": ENV_ID}, agent=first.agent, buffer=first.buffer, envs=first.envs,
                loop_state=loop_state, metrics_record=first.logger.record(), observation_shape=(5,))

        stopped = first.train(save_checkpoint=save, stop_requested=lambda: logger_step(first.logger) >= stop_at)
        assert stopped.step == stop_at and saved["payload"]["step"] == stop_at

        # Second part: fresh parts built with another seed (so nothing matches by accident), restored and
        # resumed; a resumed run has its run's seeds (sac.train keeps the config), so those are the same.
        second = dataclasses.replace(_parts(**kwargs, seed=7), seeds=RunSeeds.from_seed(0))
        resume = second.restore(saved["payload"], state_path="state-80.pkl")
        final = second.train(resume=resume)
        assert final.step == total
    alone_agent, alone_logger, first_logger, agent, logger = (alone.agent, alone.logger, first.logger,
                                                                second.agent, second.logger)

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
