"""Small environments registered for the tests, reachable as `tests.custom_envs:<Id>`."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class _Base(gym.Env):
    """A toy: random observations from the env's own seeded generator, reward -|action|^2,
    truncated after `horizon` steps."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, horizon: int = 20) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self._horizon = horizon
        self._t = 0

    def _obs(self):
        if isinstance(self.observation_space, spaces.Dict):
            return {key: self.np_random.uniform(sub.low, sub.high).astype(np.float32)
                    for key, sub in self.observation_space.spaces.items()}
        if isinstance(self.observation_space, spaces.Box):
            return self.np_random.uniform(self.observation_space.low, self.observation_space.high).astype(np.float32)
        return "x"

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        return self._obs(), -float(np.sum(np.square(action))), False, self._t >= self._horizon, {}


class UnboundedAction(_Base):
    def __init__(self):
        super().__init__(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-np.inf, np.inf, (2,), np.float32))


class DictObservation(_Base):
    def __init__(self):
        super().__init__(spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float32),
                                      "velocity": spaces.Box(-5, 5, (3,), np.float32)}),
                         spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32)))


class TextObservation(_Base):
    def __init__(self):
        super().__init__(spaces.Text(8), spaces.Box(-1, 1, (1,), np.float32))


class CrashesAtStep700(_Base):
    """Raises inside step() on its 700th step: a simulator that blows up mid-run."""

    def __init__(self):
        super().__init__(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
        self._steps_taken = 0

    def step(self, action):
        self._steps_taken += 1
        if self._steps_taken == 700:
            raise RuntimeError("simulator diverged")
        return super().step(action)


class NaNRewardAtStep50(_Base):
    def __init__(self):
        super().__init__(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
        self._steps_taken = 0

    def step(self, action):
        self._steps_taken += 1
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, (float("nan") if self._steps_taken == 50 else reward), terminated, truncated, info


gym.register("UnboundedAction-v0", entry_point=UnboundedAction)
gym.register("CrashesAtStep700-v0", entry_point=CrashesAtStep700)
gym.register("NaNRewardAtStep50-v0", entry_point=NaNRewardAtStep50)
gym.register("DictObservation-v0", entry_point=DictObservation)
gym.register("TextObservation-v0", entry_point=TextObservation)
