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


def _add(buffer: ReplayBuffer, obs, action, reward, next_obs, terminated, truncated) -> None:
    """One transition into a single-stream buffer (the loop's add_batch with one row)."""
    buffer.add_batch(np.asarray(obs)[None], np.asarray(action)[None], np.asarray([reward]), np.asarray(next_obs)[None],
                     np.asarray([terminated]), np.asarray([truncated]))


def _sample(buffer: ReplayBuffer, n: int) -> dict:
    """n transitions through the loop's own sampler (one stacked batch)."""
    return {key: value[0] for key, value in buffer.sample_stack(1, n).items()}


def _rows(batch: dict) -> list[tuple]:
    return [tuple(np.round(np.concatenate([batch["obs"][i], batch["action"][i], [batch["reward"][i]],
                                           batch["next_obs"][i], [batch["terminated"][i]]]).astype(np.float64), 5))
            for i in range(len(batch["reward"]))]


def _as_set(batch: dict) -> set:
    return set(_rows(batch))


def _naive_row(o, a, r, n, te, tr) -> tuple:
    return tuple(np.round(np.concatenate([np.float32(o), np.float32(a), [np.float32(r)], np.float32(n),
                                          np.float32([te])]).astype(np.float64), 5))


def _naive_set(items) -> set:
    return {_naive_row(*item) for item in items}


@pytest.mark.parametrize("capacity, n", [(50, 30), (50, 50), (50, 51), (50, 437), (7, 100)])
def test_sampled_transitions_are_exactly_the_stored_ones_with_their_true_next_observations(capacity, n):
    rng = np.random.default_rng(capacity + n)
    buffer = ReplayBuffer(capacity, obs_dim=3, action_dim=2, seed=0)
    naive = NaiveBuffer(capacity)
    for transition in _episodes(rng, n):
        _add(buffer, *transition)
        naive.add(*transition)
    sampled = _as_set(_sample(buffer, 20_000))
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
        _add(buffer, [i], [0.0], float(i), [i + 1], False, False)
    counts = np.bincount(_sample(buffer, 40_000)["reward"].astype(int), minlength=5)
    assert counts[4] == 0
    np.testing.assert_allclose(counts[:4] / 40_000, 0.25, atol=0.01)


def test_terminated_and_truncated_are_stored_apart_and_truncation_keeps_its_final_observation():
    buffer = ReplayBuffer(capacity=10, obs_dim=1, action_dim=1, seed=0)
    _add(buffer, [0.0], [0.0], 0.0, [1.0], False, False)
    _add(buffer, [1.0], [0.0], 1.0, [99.0], False, True)   # time limit: final obs 99, then reset to 5
    _add(buffer, [5.0], [0.0], 2.0, [6.0], True, False)     # terminal: final obs 6, then reset to 7
    _add(buffer, [7.0], [0.0], 3.0, [8.0], False, False)
    batch = _sample(buffer, 2_000)
    by_reward = {float(r): (float(n[0]), te) for r, n, te in zip(batch["reward"], batch["next_obs"], batch["terminated"])}
    # The update sees: the time-limit end bootstraps (not terminated) from its true final observation.
    assert by_reward == {0.0: (1.0, 0.0), 1.0: (99.0, 0.0), 2.0: (6.0, 1.0), 3.0: (8.0, 0.0)}
    # The record keeps how each episode ended.
    np.testing.assert_array_equal(buffer.terminated[:4], [False, False, True, False])
    np.testing.assert_array_equal(buffer.truncated[:4], [False, True, False, False])


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
    assert _as_set(_sample(buffer, 20_000)) == _naive_set(naive.items)


def test_memory_per_transition_stays_small_and_the_final_table_grows_with_episodes():
    buffer = ReplayBuffer(capacity=1000, obs_dim=348, action_dim=17, seed=0)
    assert ReplayBuffer.bytes_per_transition(348, 17) == 1470
    assert buffer.nbytes == 1000 * 1470
    rng = np.random.default_rng(0)
    for i in range(3000):  # episodes of 100 steps: about 10 in the buffer at a time
        _add(buffer, rng.normal(size=348), rng.normal(size=17), 0.0, rng.normal(size=348), False, i % 100 == 99)
    assert buffer.final_obs.shape[0] == 16  # grown once, to its minimum
    assert buffer.nbytes < 1000 * 1470 + 16 * 348 * 4 + 1


@pytest.mark.parametrize("streams, capacity, steps", [(3, 60, 14), (3, 60, 47), (2, 16, 100)])
def test_stacked_batches_from_several_streams_are_uniform_independent_and_whole(streams, capacity, steps):
    """sample_stack, the loop's sampler, against the naive reference: with several streams, before and
    after the buffer wraps around, every draw is a whole stored transition, every valid transition is
    drawn about equally often, and the K batches are drawn independently (not copies of one)."""
    buffer = ReplayBuffer(capacity=capacity, obs_dim=3, action_dim=2, seed=1, num_streams=streams)
    per_stream = capacity // streams
    naive = [NaiveBuffer(per_stream) for _ in range(streams)]
    sources = [_episodes(np.random.default_rng(20 + i), steps) for i in range(streams)]
    for _ in range(steps):
        rows = [next(source) for source in sources]
        buffer.add_batch(*[np.array([r[k] for r in rows]) for k in range(6)])
        for reference, row in zip(naive, rows):
            reference.add(*row)
    # Once a stream wraps, its oldest slot's observation is overwritten by the newest next observation.
    valid = [item for reference in naive
             for item in (reference.items[1:] if steps >= per_stream else reference.items)]
    expected = [_naive_row(*item) for item in valid]
    k, b = 8, 4000
    stack = buffer.sample_stack(k, b)
    assert stack["obs"].shape == (k, b, 3) and stack["terminated"].shape == (k, b) and "truncated" not in stack
    rows = [_rows({key: value[i] for key, value in stack.items()}) for i in range(k)]
    assert set().union(*map(set, rows)) == set(expected)  # whole transitions, and all of them drawn
    counts = np.array([sum(row == e for batch in rows for row in batch) for e in expected])
    np.testing.assert_allclose(counts / (k * b), 1.0 / len(expected), rtol=0.35)  # uniform
    assert len({tuple(batch) for batch in rows}) == k  # independent batches


def test_same_seed_same_samples_and_an_empty_buffer_refuses_to_sample():
    a, b = (ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=7) for _ in range(2))
    for transition in _episodes(np.random.default_rng(0), 10):
        _add(a, *transition)
        _add(b, *transition)
    np.testing.assert_array_equal(a.sample_stack(3, 32)["reward"], b.sample_stack(3, 32)["reward"])
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=10, obs_dim=3, action_dim=2, seed=0).sample_stack(1, 1)
