"""The replay buffer: storage, wrap-around, uniform sampling, termination kept apart from truncation,
next observations reassembled from single storage, several streams."""
from __future__ import annotations

import numpy as np
import pytest

from sac.replay import ReplayBuffer

pytestmark = pytest.mark.unit


class NaiveBuffer:
    """The reference: every transition stored whole, in a Python list."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[tuple] = []

    def add(self, *transition) -> None:
        self.items.append(transition)
        self.items = self.items[-self.capacity:]


def _episodes(rng, n: int, obs_dim: int = 3, max_len: int = 6):
    """A stream of transitions from random-length episodes, each ending terminated or truncated."""
    obs = rng.normal(size=obs_dim)
    t = 0
    length = rng.integers(1, max_len + 1)
    for _ in range(n):
        next_obs = rng.normal(size=obs_dim)
        t += 1
        ended = t == length
        terminated = bool(ended and rng.uniform() < 0.5)
        truncated = bool(ended and not terminated)
        yield obs, rng.normal(size=2), float(rng.normal()), next_obs, terminated, truncated
        if ended:
            obs, t, length = rng.normal(size=obs_dim), 0, rng.integers(1, max_len + 1)
        else:
            obs = next_obs


def _as_set(batch: dict) -> set:
    return {tuple(np.round(np.concatenate([batch["obs"][i], batch["action"][i], [batch["reward"][i]],
                                           batch["next_obs"][i], [batch["terminated"][i], batch["truncated"][i]]]
                                          ).astype(np.float64), 5))
            for i in range(len(batch["reward"]))}


def _naive_set(items) -> set:
    return {tuple(np.round(np.concatenate([np.float32(o), np.float32(a), [np.float32(r)], np.float32(n),
                                           np.float32([te, tr])]).astype(np.float64), 5))
            for o, a, r, n, te, tr in items}


@pytest.mark.parametrize("capacity, n", [(50, 30), (50, 50), (50, 51), (50, 437), (7, 100)])
def test_sampled_transitions_are_exactly_the_stored_ones_with_their_true_next_observations(capacity, n):
    rng = np.random.default_rng(capacity + n)
    buffer = ReplayBuffer(capacity, obs_dim=3, action_dim=2, seed=0)
    naive = NaiveBuffer(capacity)
    for transition in _episodes(rng, n):
        buffer.add(*transition)
        naive.add(*transition)
    sampled = _as_set(buffer.sample(20_000))
    expected = _naive_set(naive.items)
    if n >= capacity:
        # Once full, the oldest transition's observation slot holds the newest next observation.
        expected_whole = _naive_set(naive.items[1:])
        assert sampled == expected_whole
        assert len(buffer) == capacity
    else:
        assert sampled == expected
        assert len(buffer) == n


def test_sampling_is_uniform():
    buffer = ReplayBuffer(capacity=100, obs_dim=1, action_dim=1, seed=0)
    for i in range(4):
        buffer.add([i], [0.0], float(i), [i + 1], False, False)
    counts = np.bincount(buffer.sample(40_000)["reward"].astype(int), minlength=5)
    assert counts[4] == 0
    np.testing.assert_allclose(counts[:4] / 40_000, 0.25, atol=0.01)


def test_terminated_and_truncated_are_stored_apart_and_truncation_keeps_its_final_observation():
    buffer = ReplayBuffer(capacity=10, obs_dim=1, action_dim=1, seed=0)
    buffer.add([0.0], [0.0], 0.0, [1.0], False, False)
    buffer.add([1.0], [0.0], 1.0, [99.0], False, True)   # time limit: final obs 99, then reset to 5
    buffer.add([5.0], [0.0], 2.0, [6.0], True, False)     # terminal: final obs 6, then reset to 7
    buffer.add([7.0], [0.0], 3.0, [8.0], False, False)
    batch = buffer.sample(2_000)
    by_reward = {float(r): (float(n[0]), te, tr) for r, n, te, tr in
                 zip(batch["reward"], batch["next_obs"], batch["terminated"], batch["truncated"])}
    assert by_reward == {0.0: (1.0, 0.0, 0.0), 1.0: (99.0, 0.0, 1.0), 2.0: (6.0, 1.0, 0.0), 3.0: (8.0, 0.0, 0.0)}


def test_streams_keep_each_environment_s_episodes_apart():
    buffer = ReplayBuffer(capacity=40, obs_dim=3, action_dim=2, seed=0, num_streams=2)
    naive = NaiveBuffer(1000)
    streams = [_episodes(np.random.default_rng(10), 15), _episodes(np.random.default_rng(11), 15)]
    for _ in range(15):
        rows = [next(s) for s in streams]
        buffer.add_batch(*[np.array([r[k] for r in rows]) for k in range(6)])
        for r in rows:
            naive.add(*r)
    assert len(buffer) == 30
    assert _as_set(buffer.sample(20_000)) == _naive_set(naive.items)


def test_memory_per_transition_stays_small_and_the_final_table_grows_with_episodes():
    buffer = ReplayBuffer(capacity=1000, obs_dim=348, action_dim=17, seed=0)
    assert ReplayBuffer.bytes_per_transition(348, 17) == 1470
    assert buffer.nbytes == 1000 * 1470
    rng = np.random.default_rng(0)
    for i in range(3000):  # episodes of 100 steps: about 10 in the buffer at a time
        buffer.add(rng.normal(size=348), rng.normal(size=17), 0.0, rng.normal(size=348), False, i % 100 == 99)
    assert buffer.final_obs.shape[0] == 16  # grown once, to its minimum
    assert buffer.nbytes < 1000 * 1470 + 16 * 348 * 4 + 1


def test_stacked_batches_and_same_seed_same_samples():
    a, b = (ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=7) for _ in range(2))
    for transition in _episodes(np.random.default_rng(0), 10):
        a.add(*transition)
        b.add(*transition)
    np.testing.assert_array_equal(a.sample(32)["reward"], b.sample(32)["reward"])
    stack = a.sample_stack(4, 8)
    assert stack["obs"].shape == (4, 8, 3) and stack["terminated"].shape == (4, 8)
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=0).sample(1)
