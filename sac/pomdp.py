"""Partially observed tasks shipped with sac, named as pomdp-baselines names them (Ni, Eysenbach and
Salakhutdinov, "Recurrent Model-Free RL Can Be a Strong Baseline for Many POMDPs", ICML 2022):

    Pendulum-P-v0   Pendulum-v1 observing only (cos, sin) of its angle: the velocity is hidden
    Pendulum-V-v0   Pendulum-v1 observing only its angular velocity: the angle must be integrated
                    (the harder one)

Same dynamics, rewards, initial states and 200-step time limit as Pendulum-v1; only the observation
is cut. A policy that sees one observation at a time cannot act well on them: they need memory.

    MemoryCue-v0    a check of memory itself: the first observation shows a cue (+1 or -1), later
                    ones show nothing; every step pays cue * action (action in [-1, 1]) for 8
                    steps. Remembering the cue earns 8; a memoryless policy earns 1 (the first
                    step) plus nothing on average.
Registered when sac.envs is imported, so `env_id=Pendulum-P-v0` works like any Gymnasium id.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv

POMDP_TASKS = {"Pendulum-P-v0": (0, 1), "Pendulum-V-v0": (2,)}


class ObservedDims(gym.ObservationWrapper):
    """Keeps only the observation entries `dims` of a Box observation."""

    def __init__(self, env: gym.Env, dims: Sequence[int]) -> None:
        super().__init__(env)
        self.dims = list(dims)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low[self.dims], space.high[self.dims], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation)[self.dims]


def pendulum_positions(**kwargs: Any) -> gym.Env:
    """Pendulum-P-v0: (cos, sin) of the angle only."""
    return ObservedDims(PendulumEnv(**kwargs), POMDP_TASKS["Pendulum-P-v0"])


def pendulum_velocity(**kwargs: Any) -> gym.Env:
    """Pendulum-V-v0: the angular velocity only."""
    return ObservedDims(PendulumEnv(**kwargs), POMDP_TASKS["Pendulum-V-v0"])


class MemoryCue(gym.Env):
    """MemoryCue-v0 (see above). Observation [cue, 1] at the first step, [0, 0] after it."""

    LENGTH = 8

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._cue, self._t = 1.0, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._cue, self._t = float(self.np_random.choice([-1.0, 1.0])), 0
        return np.array([self._cue, 1.0], np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = self._cue * float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        self._t += 1
        return np.zeros(2, np.float32), reward, False, self._t >= self.LENGTH, {}


def register() -> None:
    """Register the tasks (once) with Gymnasium, with Pendulum-v1's 200-step time limit."""
    for env_id, entry_point in (("Pendulum-P-v0", pendulum_positions), ("Pendulum-V-v0", pendulum_velocity)):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=200)
    if "MemoryCue-v0" not in gym.registry:
        gym.register("MemoryCue-v0", entry_point=MemoryCue)
