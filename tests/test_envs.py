"""Making envs: an env registered without a time limit gets one of 1,000 steps, so that evaluation
and sac.play always end."""
from __future__ import annotations

import numpy as np
import pytest

from sac.envs import DEFAULT_MAX_EPISODE_STEPS, make_env, make_vector_env

pytestmark = pytest.mark.unit


def test_an_env_without_a_time_limit_is_truncated_after_the_default_limit():
    env = make_env("tests.custom_envs:NoTimeLimit-v0")
    env.reset(seed=0)
    ends = []
    for t in range(1, DEFAULT_MAX_EPISODE_STEPS + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            ends.append((t, terminated, truncated))
    assert DEFAULT_MAX_EPISODE_STEPS == 1000 and ends == [(1000, False, True)]


def test_an_env_s_own_time_limit_is_kept_and_multi_dimensional_observations_are_flattened():
    env = make_env("tests.custom_envs:BoxObservation2x3-v0")  # registered with 20 steps, (2, 3) observations
    assert env.spec.max_episode_steps == 20 and env.observation_space.shape == (6,)
    envs = make_vector_env("tests.custom_envs:BoxObservation2x3-v0", {}, 2)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, 6) and np.isfinite(obs).all()
