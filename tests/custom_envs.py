"""Small environments registered for the tests, reachable as `tests.custom_envs:<Id>`."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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


class EndsBothWays(_Base):
    """Observes [t, episode]: its first episode ends for real (terminated) after 7 steps, every later
    one at the 20-step time limit (truncated), so a test can tell which final observation each end
    must keep."""

    def __init__(self):
        super().__init__(spaces.Box(0, 100, (2,), np.float32), spaces.Box(-1, 1, (2,), np.float32))
        self._episode = -1

    def _obs(self):
        return np.array([self._t, self._episode], np.float32)

    def reset(self, *, seed=None, options=None):
        self._episode += 1
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, _, truncated, info = super().step(action)
        terminated = self._episode == 0 and self._t == 7
        return obs, reward, terminated, truncated and not terminated, info


class BoxObservation2x3(_Base):
    """Observations are a (2, 3) Box: sac flattens them to 6 numbers."""

    def __init__(self):
        super().__init__(spaces.Box(-1, 1, (2, 3), np.float32), spaces.Box(-1, 1, (2,), np.float32))


class NoTimeLimit(_Base):
    """Never ends by itself (registered without max_episode_steps): sac gives it a time limit."""

    def __init__(self):
        super().__init__(spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (1,), np.float32), horizon=10**9)


class SignalsItself(gym.Wrapper):
    """Pendulum-v1 that stops its own training process at a chosen step, as a scheduler or a user
    would, so that tests stop runs at an exact step instead of racing a clock.

    At its `at_step`-th step (counted per env instance; 0: never) it first, with `pause_file`, writes
    `<pause_file>.paused` and waits (at most `pause_seconds`) for `<pause_file>.go` to appear, then
    sends `signals` (names such as "SIGTERM", "SIGKILL") to its own process, one after another.
    With `only_if_env`, only in a process where that environment variable is set."""

    def __init__(self, at_step: int = 0, signals: tuple = ("SIGTERM",), pause_file: str | None = None,
                 pause_seconds: float = 300.0, only_if_env: str | None = None):
        super().__init__(gym.make("Pendulum-v1"))
        self._at_step, self._signals = at_step, tuple(signals)
        self._pause_file, self._pause_seconds = pause_file, pause_seconds
        self._steps_taken = 0
        if only_if_env and not os.environ.get(only_if_env):
            self._at_step = 0  # this process was not chosen (one worker of several, say)

    def step(self, action):
        result = self.env.step(action)
        self._steps_taken += 1
        if self._steps_taken == self._at_step:
            if self._pause_file:
                Path(f"{self._pause_file}.paused").touch()
                deadline = time.monotonic() + self._pause_seconds
                while not Path(f"{self._pause_file}.go").exists():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"nobody created {self._pause_file}.go")
                    time.sleep(0.05)
            for name in self._signals:
                os.kill(os.getpid(), getattr(signal, name))
        return result


class StopsItsGrid(gym.Wrapper):
    """Pendulum-v1 that stops the `sac.grid` process which started its run (its parent), as a user's
    Ctrl-C would, at its `at_step`-th step, once per `arm_file`: only while that file exists, and only
    the process that removes it. It then waits (at most `wait_seconds`) until the grid's SIGTERM has
    reached its own process, so the run stops at that step whatever the machine's speed.
    With `whole_job`, it first sends its own process a SIGTERM too, as a scheduler that signals every
    process of a job would (the run then gets two: its own and the grid's)."""

    def __init__(self, at_step: int = 0, arm_file: str = "", wait_seconds: float = 120.0, whole_job: bool = False):
        super().__init__(gym.make("Pendulum-v1"))
        self._at_step, self._arm_file, self._wait_seconds = at_step, arm_file, wait_seconds
        self._whole_job = whole_job
        self._steps_taken = 0

    def step(self, action):
        result = self.env.step(action)
        self._steps_taken += 1
        if self._steps_taken == self._at_step and self._arm_file:
            try:
                os.unlink(self._arm_file)  # exactly one process wins
            except FileNotFoundError:
                return result
            reached = []
            previous = signal.getsignal(signal.SIGTERM)

            def note(signum, frame):
                reached.append(signum)
                if callable(previous):
                    previous(signum, frame)  # sac.train's handler

            signal.signal(signal.SIGTERM, note)
            try:
                if self._whole_job:
                    os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getppid(), signal.SIGTERM)
                expected = 2 if self._whole_job else 1
                deadline = time.monotonic() + self._wait_seconds
                while len(reached) < expected:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the grid did not pass its stop on to this run")
                    time.sleep(0.01)
            finally:
                signal.signal(signal.SIGTERM, previous)
        return result


class LogsItsSteps(gym.Wrapper):
    """Pendulum-v1 (rendered in `render_mode`) that writes each reset's and step's observation to
    <log_dir>/<render_mode>-<pid>-<instance>.txt, so a test can compare what two copies did."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}
    _instances = 0

    def __init__(self, log_dir: str = "", render_mode: str | None = None):
        super().__init__(gym.make("Pendulum-v1", render_mode=render_mode))
        self.env.unwrapped.metadata = {**self.env.unwrapped.metadata, "render_fps": 100_000}  # no 30 fps pacing
        LogsItsSteps._instances += 1
        self._path = Path(log_dir) / f"{render_mode}-{os.getpid()}-{LogsItsSteps._instances}.txt"

    def _log(self, kind, obs):
        with open(self._path, "a") as f:
            f.write(kind + " " + " ".join(repr(float(v)) for v in np.ravel(obs)) + "\n")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._log("reset", obs)
        return obs, info

    def step(self, action):
        result = self.env.step(action)
        self._log("step", result[0])
        return result


gym.register("UnboundedAction-v0", entry_point=UnboundedAction)
gym.register("BoxObservation2x3-v0", entry_point=BoxObservation2x3, max_episode_steps=20)
gym.register("NoTimeLimit-v0", entry_point=NoTimeLimit)
gym.register("SignalsItself-v0", entry_point=SignalsItself)
gym.register("CrashesAtStep700-v0", entry_point=CrashesAtStep700)
gym.register("NaNRewardAtStep50-v0", entry_point=NaNRewardAtStep50)
gym.register("DictObservation-v0", entry_point=DictObservation)
gym.register("TextObservation-v0", entry_point=TextObservation)
gym.register("EndsBothWays-v0", entry_point=EndsBothWays)
gym.register("StopsItsGrid-v0", entry_point=StopsItsGrid)
gym.register("LogsItsSteps-v0", entry_point=LogsItsSteps, max_episode_steps=200)
