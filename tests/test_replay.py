"""The replay buffer: storage, wrap-around, uniform sampling, termination kept apart from truncation."""
from __future__ import annotations

import numpy as np
import pytest

from sac.replay import ReplayBuffer

pytestmark = pytest.mark.unit


def _fill(buffer: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buffer.add(np.full(3, i), np.full(2, -i), float(i), np.full(3, i + 1), terminated=(i % 3 == 0),
                   truncated=(i % 3 == 1))


def test_wrap_around_overwrites_the_oldest_transitions():
    buffer = ReplayBuffer(capacity=5, obs_dim=3, action_dim=2, seed=0)
    _fill(buffer, 7)
    assert len(buffer) == 5
    # Transitions 5 and 6 replaced 0 and 1 in slots 0 and 1.
    assert sorted(buffer.reward.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    np.testing.assert_array_equal(buffer.obs[0], [5, 5, 5])
    np.testing.assert_array_equal(buffer.next_obs[1], [7, 7, 7])
    assert buffer.obs.dtype == np.float32 and buffer.action.dtype == np.float32


def test_samples_come_only_from_stored_transitions_uniformly_and_stay_consistent():
    buffer = ReplayBuffer(capacity=100, obs_dim=3, action_dim=2, seed=0)
    _fill(buffer, 4)
    batch = buffer.sample(40_000)
    counts = np.bincount(batch["reward"].astype(int), minlength=5)
    assert counts[4] == 0
    np.testing.assert_allclose(counts[:4] / 40_000, 0.25, atol=0.01)
    # Every field of a sampled row belongs to the same transition.
    np.testing.assert_array_equal(batch["obs"][:, 0], batch["reward"])
    np.testing.assert_array_equal(batch["next_obs"][:, 0], batch["reward"] + 1)
    np.testing.assert_array_equal(batch["action"][:, 0], -batch["reward"])


def test_terminated_and_truncated_are_stored_apart():
    buffer = ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=0)
    _fill(buffer, 6)
    np.testing.assert_array_equal(buffer.terminated[:6], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(buffer.truncated[:6], [0, 1, 0, 0, 1, 0])


def test_same_seed_same_samples_and_empty_buffer_refuses():
    a, b = (ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=7) for _ in range(2))
    _fill(a, 10)
    _fill(b, 10)
    np.testing.assert_array_equal(a.sample(32)["reward"], b.sample(32)["reward"])
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=0).sample(1)
