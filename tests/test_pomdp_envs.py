"""The partially observed Pendulum tasks: the same episodes as Pendulum-v1, with only the angle's
(cos, sin) or only the angular velocity observed."""
from __future__ import annotations

import numpy as np
import pytest

from sac.envs import make_env, prepare_headless_rendering

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("env_id, dims", [("Pendulum-P-v0", [0, 1]), ("Pendulum-V-v0", [2])])
def test_a_partially_observed_pendulum_shows_its_dims_of_the_same_episode(env_id, dims):
    full, partial = make_env("Pendulum-v1"), make_env(env_id)
    assert partial.observation_space.shape == (len(dims),)
    np.testing.assert_array_equal(partial.observation_space.high, full.observation_space.high[dims])
    obs_full, _ = full.reset(seed=4)
    obs_partial, _ = partial.reset(seed=4)
    np.testing.assert_array_equal(obs_partial, obs_full[dims])
    actions = np.random.default_rng(0).uniform(-2, 2, size=(200, 1)).astype(np.float32)
    for t, action in enumerate(actions, start=1):
        obs_full, reward_full, term_full, trunc_full, _ = full.step(action)
        obs_partial, reward_partial, term_partial, trunc_partial, _ = partial.step(action)
        np.testing.assert_array_equal(obs_partial, obs_full[dims])
        assert reward_partial == reward_full and term_partial == term_full is False
        assert trunc_partial == trunc_full == (t == 200)  # Pendulum-v1's 200-step time limit
    assert partial.spec.max_episode_steps == 200


def test_the_tasks_render_like_pendulum():
    prepare_headless_rendering()  # what sac.play does before it records a video
    env = make_env("Pendulum-V-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
