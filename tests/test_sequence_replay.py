"""The sequence sampler (ReplayBuffer.sample_sequence_stack) against a naive reference that keeps
every stream's transitions as a plain list, split into episodes by how each one ended."""
from __future__ import annotations

import numpy as np
import pytest

from sac.replay import ReplayBuffer

pytestmark = pytest.mark.unit

OBS_DIM, ACTION_DIM = 2, 1


def _fill(buffer: ReplayBuffer, steps: int, seed: int, resume_at: int | None = None) -> list[list[dict]]:
    """Random episodes (terminated or truncated at random) in every stream. Observation = (stream,
    time), so every stored transition is recognisable. Returns each stream's transitions in order;
    with `resume_at`, the episodes under way are cut there as a resumed run cuts them."""
    rng = np.random.default_rng(seed)
    streams = buffer.num_streams
    history: list[list[dict]] = [[] for _ in range(streams)]
    obs = np.array([[s, 0.0] for s in range(streams)], np.float32)
    for t in range(steps):
        if t == resume_at:
            buffer.mark_last_truncated()
            for s in range(streams):
                history[s][-1]["ended"] = True
        action = rng.uniform(-1, 1, (streams, ACTION_DIM)).astype(np.float32)
        reward = rng.normal(size=streams).astype(np.float32)
        terminated = rng.uniform(size=streams) < 0.05
        truncated = ~terminated & (rng.uniform(size=streams) < 0.05)
        next_obs = np.array([[s, t + 1.0] for s in range(streams)], np.float32)
        final = next_obs + np.array([0.0, 0.5], np.float32)  # a final observation differs from the next one
        ended = terminated | truncated
        stored_next = np.where(ended[:, None], final, next_obs)
        buffer.add_batch(obs, action, reward, stored_next, terminated, truncated)
        for s in range(streams):
            history[s].append({"obs": obs[s].copy(), "action": action[s], "reward": reward[s],
                               "terminated": bool(terminated[s]), "ended": bool(ended[s]), "next_obs": stored_next[s]})
        obs = next_obs
    return history


def _naive_windows(history: list[list[dict]], stream_capacity: int, length: int) -> dict:
    """For each whole stored transition (key: its observation): the steps of the sequence that ends
    there, whether it begins at its episode's start, and the action before its first step."""
    windows = {}
    for transitions in history:
        size = min(len(transitions), stream_capacity)
        # A full stream's oldest slot has had its observation overwritten: not whole any more.
        kept = transitions[-(size - 1 if size == stream_capacity else size):]
        for j in range(len(kept)):
            first = j
            while first > 0 and j - first + 1 < length and not kept[first - 1]["ended"]:
                first -= 1
            if first > 0:
                at_start = kept[first - 1]["ended"]
                previous_action = np.zeros(ACTION_DIM) if at_start else kept[first - 1]["action"]
            else:  # the oldest whole step: an episode start only if it is the stream's first step ever
                at_start, previous_action = len(kept) == len(transitions), np.zeros(ACTION_DIM)
            windows[tuple(kept[j]["obs"])] = (kept[first:j + 1], at_start, previous_action)
    return windows


@pytest.mark.parametrize("streams, capacity, steps, length, burn_in, resume_at", [
    (1, 400, 150, 6, 0, None),      # never wrapped
    (3, 90, 200, 5, 2, None),       # three streams, each wrapped several times
    (2, 60, 45, 8, 3, 20),          # a resumed run's cut episode
    (2, 40, 400, 4, 1, 300),        # wrapped, and cut
])
def test_every_sequence_is_the_naive_window_of_its_last_step(streams, capacity, steps, length, burn_in, resume_at):
    buffer = ReplayBuffer(capacity, OBS_DIM, ACTION_DIM, seed=1, num_streams=streams)
    history = _fill(buffer, steps, seed=2, resume_at=resume_at)
    reference = _naive_windows(history, capacity // streams, length)
    batch = buffer.sample_sequence_stack(4, 500, length, burn_in)
    flat = {k: v.reshape(2000, *v.shape[2:]) for k, v in batch.items()}
    seen = set()
    for i in range(2000):
        n = int((flat["action"][i] != 0).any(axis=-1).sum())  # real steps: actions are never exactly 0
        last = tuple(flat["obs"][i, n - 1])
        steps_ref, at_start, previous_action = reference[last]
        seen.add(last)
        assert n == len(steps_ref), (i, n, len(steps_ref))
        # Never across an episode boundary: only the last step may have ended, and in order.
        assert not any(s["ended"] for s in steps_ref[:-1])
        np.testing.assert_array_equal(flat["obs"][i, :n], [s["obs"] for s in steps_ref])
        np.testing.assert_array_equal(flat["obs"][i, n], steps_ref[-1]["next_obs"])
        assert not flat["obs"][i, n + 1:].any() and not flat["action"][i, n:].any()  # zero padding
        np.testing.assert_array_equal(flat["action"][i, :n], [s["action"] for s in steps_ref])
        np.testing.assert_array_equal(flat["reward"][i, :n], [s["reward"] for s in steps_ref])
        np.testing.assert_array_equal(flat["terminated"][i, :n], [float(s["terminated"]) for s in steps_ref])
        np.testing.assert_array_equal(flat["prev_action"][i, 0], previous_action)
        np.testing.assert_array_equal(flat["prev_action"][i, 1:n + 1], flat["action"][i, :n])
        assert flat["warm"][i] == (0.0 if at_start else 1.0)
        expected_mask = [1.0 if (k < n and (at_start or k >= burn_in)) else 0.0 for k in range(length)]
        np.testing.assert_array_equal(flat["mask"][i], expected_mask)
    assert seen == set(reference)  # every whole transition ends some sequence


def test_a_step_within_sequence_length_of_its_episode_start_sees_that_start():
    """Memory across the episode: a sequence ending k < length steps after its episode's first
    step begins at that first step (with the exact zero state: warm = 0)."""
    buffer = ReplayBuffer(1000, OBS_DIM, ACTION_DIM, seed=3, num_streams=2)
    history = _fill(buffer, 300, seed=4)
    length = 10
    where = {}  # observation -> (its episode's first observation, steps since then)
    for transitions in history:
        k = 0
        for i, s in enumerate(transitions):
            k = 0 if i == 0 or transitions[i - 1]["ended"] else k + 1
            where[tuple(s["obs"])] = (tuple(transitions[i - k]["obs"]), k)
    batch = buffer.sample_sequence_stack(1, 3000, length)
    near = 0
    for obs, mask, warm in zip(batch["obs"][0], batch["mask"][0], batch["warm"][0]):
        n = int(mask.sum())
        start, k = where[tuple(obs[n - 1])]
        if k < length:
            near += 1
            assert tuple(obs[0]) == start and n == k + 1 and warm == 0.0
        else:
            assert n == length and warm == 1.0
    assert near > 300


def test_ends_are_uniform_over_the_stored_transitions():
    buffer = ReplayBuffer(120, OBS_DIM, ACTION_DIM, seed=5, num_streams=3)
    _fill(buffer, 100, seed=6)
    batch = buffer.sample_sequence_stack(8, 4000, 4)
    counts: dict[tuple, int] = {}
    for obs, mask in zip(batch["obs"].reshape(-1, 5, 2), batch["mask"].reshape(-1, 4)):
        last = tuple(obs[int(mask.sum()) - 1])
        counts[last] = counts.get(last, 0) + 1
    assert len(counts) == 3 * 39  # 40 slots per stream, the oldest no longer whole
    expected = 32000 / len(counts)
    assert min(counts.values()) > 0.7 * expected and max(counts.values()) < 1.3 * expected
