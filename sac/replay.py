"""The replay buffer: uniform sampling over float32 transitions, each observation stored once.

Memory. A transition's next observation is the following transition's observation, so it is not
stored twice: `obs[j + 1]` serves as transition j's next observation. Only where an episode ended
(terminated or truncated) does the final observation differ from the next stored one (the reset
observation); those finals go to a small side table that grows as needed (about one row per
episode in the buffer). Per transition that is 4 * (obs_dim + action_dim + 1) bytes for the
observation, action and reward, 2 bytes for the `terminated` and `truncated` flags and 4 for the
side-table index: 1,470 bytes for Humanoid-v5 (348 + 17), 1.37 GiB for a million transitions,
against 2.7 GiB when next observations are stored too.

Termination is kept apart from truncation, as Stable-Baselines3 does: only `terminated` stops the
TD target from bootstrapping; a time-limit end keeps its true final observation to bootstrap from.

Streams. With several environments stepped together, each writes its own stream (a contiguous
segment of capacity // num_streams slots), so that "the next slot" stays the same episode.
"""
from __future__ import annotations

import numpy as np


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int, seed: int, num_streams: int = 1) -> None:
        if capacity < 2 * num_streams:
            raise ValueError(f"a replay capacity of {capacity} cannot hold two transitions per stream")
        self.num_streams = num_streams
        self.stream_capacity = capacity // num_streams
        self.capacity = self.stream_capacity * num_streams
        n = self.capacity
        self.obs = np.zeros((n, obs_dim), np.float32)
        self.action = np.zeros((n, action_dim), np.float32)
        self.reward = np.zeros((n,), np.float32)
        self.terminated = np.zeros((n,), bool)
        self.truncated = np.zeros((n,), bool)
        self.final_row = np.full((n,), -1, np.int32)  # row of final_obs, or -1: next obs is obs[j + 1]
        self.final_obs = np.zeros((0, obs_dim), np.float32)
        self._free_rows: list[int] = []
        self._head = 0  # the slot (within each stream) the next transitions go to
        self._stream_size = 0  # transitions held per stream
        self._starts = np.arange(num_streams) * self.stream_capacity
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._stream_size * self.num_streams

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.obs, self.action, self.reward, self.terminated, self.truncated,
                                      self.final_row, self.final_obs))

    @staticmethod
    def bytes_per_transition(obs_dim: int, action_dim: int) -> int:
        """Bytes per stored transition, not counting the final-observation rows (one per episode)."""
        return 4 * (obs_dim + action_dim + 1) + 2 + 4

    # --- Writing ------------------------------------------------------------------------------------
    def add_batch(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                  terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Store one transition per stream (row i goes to stream i), overwriting the oldest when full."""
        slots = self._starts + self._head
        next_slots = self._starts + (self._head + 1) % self.stream_capacity
        for row in self.final_row[slots][self.final_row[slots] >= 0]:
            self._free_rows.append(int(row))  # the transitions being overwritten release their rows
        self.obs[slots] = obs
        self.action[slots] = action
        self.reward[slots] = reward
        self.terminated[slots] = terminated
        self.truncated[slots] = truncated
        ended = np.logical_or(terminated, truncated)
        self.final_row[slots] = -1
        for i in np.flatnonzero(ended):
            row = self._allocate_row()
            self.final_obs[row] = next_obs[i]
            self.final_row[slots[i]] = row
        continuing = ~ended
        self.obs[next_slots[continuing]] = next_obs[continuing]
        self._head = (self._head + 1) % self.stream_capacity
        self._stream_size = min(self._stream_size + 1, self.stream_capacity)

    def _allocate_row(self) -> int:
        if not self._free_rows:
            old = len(self.final_obs)
            new = min(max(16, 2 * old), self.capacity)
            grown = np.zeros((new, self.final_obs.shape[1]), np.float32)
            grown[:old] = self.final_obs
            self.final_obs = grown
            self._free_rows.extend(range(new - 1, old - 1, -1))
        return self._free_rows.pop()

    def mark_last_truncated(self) -> None:
        """End each stream's newest transition as truncated, keeping its true next observation.

        Used when a resumed run restarts the episode that was under way (the env's own state is not
        saved): the reset observation goes into the slot that held that transition's next
        observation, so the next observation moves to the side table first. A cut-off episode is a
        truncation, like a time limit: its last transition still bootstraps."""
        if self._stream_size == 0:
            return
        last = self._starts + (self._head - 1) % self.stream_capacity
        following = self._starts + self._head
        for slot, next_slot in zip(last, following):
            if self.final_row[slot] < 0 and not self.terminated[slot]:
                row = self._allocate_row()
                self.final_obs[row] = self.obs[next_slot]
                self.final_row[slot] = row
                self.truncated[slot] = True

    # --- Saving and restoring (a resumed run continues with the same contents and sampler) ---------
    def _stored_slots(self) -> int:
        """Slots per stream holding data: the transitions, plus the head slot's next observation."""
        return self.stream_capacity if self._stream_size == self.stream_capacity else self._stream_size + 1

    def get_state(self) -> dict:
        n = self._stored_slots()

        def per_stream(a: np.ndarray) -> np.ndarray:
            return a.reshape(self.num_streams, self.stream_capacity, *a.shape[1:])[:, :n]

        return {
            "capacity": self.capacity, "num_streams": self.num_streams, "obs_dim": self.obs.shape[1],
            "action_dim": self.action.shape[1], "head": self._head, "stream_size": self._stream_size,
            "obs": per_stream(self.obs), "action": per_stream(self.action), "reward": per_stream(self.reward),
            "terminated": per_stream(self.terminated), "truncated": per_stream(self.truncated),
            "final_row": per_stream(self.final_row), "final_obs": self.final_obs,
            "free_rows": list(self._free_rows), "rng": self._rng.bit_generator.state,
        }

    def set_state(self, state: dict) -> None:
        """Load `get_state()` output. The capacity may grow (a run extended with a larger total_steps)
        as long as the saved buffer never wrapped around; otherwise it must match."""
        if (state["obs_dim"], state["action_dim"]) != (self.obs.shape[1], self.action.shape[1]):
            raise ValueError(f"replay buffer holds observations of {state['obs_dim']} and actions of "
                             f"{state['action_dim']} numbers; this run needs {self.obs.shape[1]} and {self.action.shape[1]}")
        if state["num_streams"] != self.num_streams:
            raise ValueError(f"replay buffer has {state['num_streams']} streams; this run has {self.num_streams}")
        n = state["obs"].shape[1]
        wrapped = state["stream_size"] == state["capacity"] // state["num_streams"]
        if (wrapped and state["capacity"] != self.capacity) or n > self.stream_capacity:
            raise ValueError(f"replay buffer of capacity {state['capacity']} does not fit this run's {self.capacity}")
        for name in ("obs", "action", "reward", "terminated", "truncated", "final_row"):
            target = getattr(self, name)
            target.reshape(self.num_streams, self.stream_capacity, *target.shape[1:])[:, :n] = state[name]
        self.final_obs = np.array(state["final_obs"], np.float32).reshape(-1, self.obs.shape[1])
        self._free_rows = [int(r) for r in state["free_rows"]]
        self._head, self._stream_size = int(state["head"]), int(state["stream_size"])
        self._rng.bit_generator.state = state["rng"]

    # --- Sampling -----------------------------------------------------------------------------------
    def _valid_per_stream(self) -> int:
        # Once a stream is full, its head slot's observation has been overwritten by the newest
        # transition's next observation: that oldest transition is no longer whole.
        full = self._stream_size == self.stream_capacity
        return self._stream_size - 1 if full else self._stream_size

    def _draw(self, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """`n` whole transitions drawn uniformly: their streams, their positions in age order within
        the stream (0: the oldest whole one), and the slot offset of position 0."""
        valid = self._valid_per_stream()
        if valid <= 0:
            raise ValueError("cannot sample from an empty replay buffer")
        draw = self._rng.integers(0, valid * self.num_streams, size=n)
        stream, position = np.divmod(draw, valid)
        base = self._head + 1 if self._stream_size == self.stream_capacity else 0
        return stream, position, base

    def sample_slots(self, n: int) -> np.ndarray:
        stream, position, base = self._draw(n)
        return self._starts[stream] + (base + position) % self.stream_capacity

    def _next_obs(self, slots: np.ndarray) -> np.ndarray:
        """Each transition's next observation: the next slot's, or the side table's at an episode end."""
        stream_start = (slots // self.stream_capacity) * self.stream_capacity
        next_obs = self.obs[stream_start + (slots - stream_start + 1) % self.stream_capacity]
        rows = self.final_row[slots]
        ended = rows >= 0
        if ended.any():
            next_obs[ended] = self.final_obs[rows[ended]]
        return next_obs

    def gather(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        """What the update reads of the transitions at `slots` (any shape): observation, action,
        reward, next observation (reassembled) and `terminated`. `truncated` is stored (a resumed
        run's cut episode, the record of how each episode ended) but never needed by the update: a
        truncated transition bootstraps like any non-terminal one, from its true final observation."""
        return {
            "obs": self.obs[slots],
            "action": self.action[slots],
            "reward": self.reward[slots],
            "next_obs": self._next_obs(slots),
            "terminated": self.terminated[slots].astype(np.float32),
        }

    def sample_stack(self, num_batches: int, batch_size: int) -> dict[str, np.ndarray]:
        """`num_batches` independent batches stacked as [num_batches, batch_size, ...], drawn uniformly
        with replacement from the whole transitions stored (all streams)."""
        return self.gather(self.sample_slots(num_batches * batch_size).reshape(num_batches, batch_size))

    # --- Sequences, for recurrent networks (docs/recurrent.md) ---------------------------
    def sample_sequence_stack(self, num_batches: int, batch_size: int, length: int, burn_in: int = 0
                              ) -> dict[str, np.ndarray]:
        """`num_batches` batches of `batch_size` sequences of up to `length` steps, stacked [K, B, ...].

        Each sequence ends at a whole transition drawn uniformly (as `sample_stack` draws them) and
        reaches back up to `length` steps, never past its episode's first step: a sequence that
        ends within `length` steps of its episode's start begins at that start, so the recurrent
        state there is exact (zero) and every step of it sees the whole episode so far. Sequences
        are left-aligned and padded at the end with zeros; `mask` says which steps count.

            obs          [K, B, L + 1, O]  the observations of the steps, then the last step's next
                                           observation (at index = the sequence's length)
            prev_action  [K, B, L + 1, A]  the action before each of those observations (zero
                                           at an episode's first step)
            action, reward, terminated     [K, B, L, ...] the steps' own
            mask         [K, B, L]  1 for steps that enter the losses: real (not padding) and, in
                                    a sequence that does not begin at its episode's start, not
                                    among its first `burn_in` steps
            warm         [K, B]     1 for a sequence that does not begin at its episode's start
                                    (its burn-in steps only warm the state up; see networks.py)

        A transition's predecessor belongs to its episode unless that predecessor ended (terminated
        or truncated) or is no longer stored. Only the last step of a sequence can have ended."""
        n = num_batches * batch_size
        stream, end, base = self._draw(n)
        cap = self.stream_capacity
        full = self._stream_size == cap
        starts = self._starts[stream][:, None]

        def slot(position: np.ndarray) -> np.ndarray:
            return starts + (base + np.maximum(position, 0)) % cap

        ended = self.final_row >= 0
        before = end[:, None] - np.arange(1, length)  # the length - 1 positions before each end
        continues = (before >= 0) & ~ended[slot(before)]
        size = 1 + np.cumprod(continues, axis=1).sum(axis=1)  # steps in each sequence
        first = end - size + 1
        previous = slot(first[:, None] - 1)[:, 0]  # the slot before each first step (if stored)
        # An episode's start: the step before it ended, or it is a stream's first step ever stored.
        at_start = np.where(first == 0, not full, ended[previous])
        index = np.arange(length)
        real = index[None, :] < size[:, None]
        slots = slot(np.minimum(first[:, None] + index, end[:, None]))

        obs_dim, action_dim = self.obs.shape[1], self.action.shape[1]
        obs = np.zeros((n, length + 1, obs_dim), np.float32)
        obs[:, :length] = np.where(real[..., None], self.obs[slots], 0.0)
        obs[np.arange(n), size] = self._next_obs(slots[np.arange(n), size - 1])
        action = np.where(real[..., None], self.action[slots], 0.0).astype(np.float32)
        prev_action = np.zeros((n, length + 1, action_dim), np.float32)
        prev_action[:, 1:] = action
        # Before the first step: its episode's previous action when the sequence starts mid-episode.
        carried = ~at_start & (first > 0)
        prev_action[carried, 0] = self.action[previous[carried]]
        mask = real & (at_start[:, None] | (index[None, :] >= burn_in))

        def stacked(a: np.ndarray) -> np.ndarray:
            return a.reshape(num_batches, batch_size, *a.shape[1:])

        return {
            "obs": stacked(obs), "prev_action": stacked(prev_action), "action": stacked(action),
            "reward": stacked(np.where(real, self.reward[slots], 0.0).astype(np.float32)),
            "terminated": stacked(np.where(real, self.terminated[slots], False).astype(np.float32)),
            "mask": stacked(mask.astype(np.float32)), "warm": stacked((~at_start).astype(np.float32)),
        }
