"""Making and checking environments: Gymnasium ids, `module:EnvId` ids, and the spaces SAC accepts.

No TensorFlow here: `sac.train` checks the env before TensorFlow is imported, so a wrong id fails in
about a second.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from sac import pomdp
from sac.errors import UserError

pomdp.register()  # Pendulum-P-v0 and Pendulum-V-v0 (sac/pomdp.py) are ids like any other

# The time limit given to envs registered without one (MuJoCo tasks use 1000 too).
DEFAULT_MAX_EPISODE_STEPS = 1000


def _import_env_module(env_id: str) -> str:
    """`module:EnvId` imports `module` (which registers EnvId) and returns `EnvId`."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or whatever the user's module raises while importing
        raise UserError(f"cannot import module {module!r} named in env_id {env_id!r}: "
                        f"{type(exc).__name__}: {exc}") from None
    if name not in gym.registry:
        # Gymnasium's own `module:EnvId` form: gym.make imports the module and looks the id up.
        name = env_id
    return name


def _unknown_env_message(env_id: str) -> str:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown env id {env_id!r}{hint}"


_MUJOCO_WARNINGS_SEEN: set[str] = set()


def _mujoco_warning(message: str) -> None:
    # Gymnasium's HalfCheetah model uses a compiler attribute that MuJoCo >= 3.x deprecates; MuJoCo's
    # default handler prints that on every make and appends it to MUJOCO_LOG.TXT in the working
    # directory. Known-harmless warnings are dropped; any other is printed once.
    if "settotalmass" in message or message in _MUJOCO_WARNINGS_SEEN:
        return
    _MUJOCO_WARNINGS_SEEN.add(message)
    print(f"MuJoCo warning: {message}", file=sys.stderr)


def _route_mujoco_warnings() -> None:
    if importlib.util.find_spec("mujoco") is not None:
        import mujoco

        if mujoco.get_mju_user_warning() is not _mujoco_warning:
            mujoco.set_mju_user_warning(_mujoco_warning)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, render_mode: str | None = None) -> gym.Env:
    """Make `env_id` with `env_kwargs`, flatten Dict observations, and check its spaces for SAC."""
    _route_mujoco_warnings()
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    name = _import_env_module(env_id)
    try:
        env = gym.make(name, **kwargs)
    except gym.error.Error as exc:
        if isinstance(exc, (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
                            gym.error.UnregisteredEnv)):
            raise UserError(_unknown_env_message(env_id)) from None
        raise UserError(f"cannot make env {env_id!r}: {exc}") from None
    except ImportError as exc:
        raise UserError(f"env {env_id!r} needs a package that is not installed: {exc}") from None
    except Exception as exc:  # a bad env_kwargs value can raise anything in the env's constructor
        raise UserError(f"cannot make env {env_id!r} with env_kwargs {env_kwargs!r}: "
                        f"{type(exc).__name__}: {exc}") from None
    try:
        check_action_space(env.action_space)
        check_observation_space(env.observation_space)
        if len(env.observation_space.shape or ()) != 1:
            env = gym.wrappers.FlattenObservation(env)
        if env.spec is None or env.spec.max_episode_steps is None:
            # Evaluation and play run whole episodes: an env without a time limit gets one.
            env = gym.wrappers.TimeLimit(env, DEFAULT_MAX_EPISODE_STEPS)
    except UserError:
        env.close()
        raise
    return env


def episode_start(env: gym.Env, seed: int | None) -> dict[str, Any]:
    """What a reset(seed=seed) of `env`, about to happen, starts from: the seed, or (unseeded) the
    state of the env's generator, from which the env draws its initial state. Plain data."""
    if seed is not None:
        return {"seed": int(seed)}
    return {"rng": env.unwrapped.np_random.bit_generator.state}


def prepare_episode(env: gym.Env, start: dict[str, Any]) -> None:
    """Arrange that the next unseeded reset() of `env` starts the episode recorded in `start`."""
    if "rng" in start:
        generator = np.random.Generator(getattr(np.random, start["rng"]["bit_generator"])())
        generator.bit_generator.state = start["rng"]
        env.unwrapped.np_random = generator
    else:
        env.unwrapped.np_random, _ = seeding.np_random(start["seed"])


class EpisodeStartRecorder(gym.Wrapper):
    """Remembers the random state each episode starts from, so a resumed run can start the same
    episode again: the env's own state (MuJoCo's simulator, say) is not saved in a checkpoint, but
    an unseeded reset draws its initial state from the env's generator, whose state is plain data."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episode_start: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.episode_start = episode_start(self.env, seed)
        return self.env.reset(seed=seed, options=options)

    def restart_episode(self, start: dict[str, Any]) -> None:
        """Arrange that the next unseeded reset() starts the episode recorded in `start`."""
        prepare_episode(self.env, start)


def make_vector_env(env_id: str, env_kwargs: dict[str, Any] | None, num_envs: int,
                    wrap_first: Callable[[gym.Env], gym.Env] | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies stepped together in this process. At an episode's end the env is reset in
    the same step (SAME_STEP autoreset) and its last observation is returned in info["final_obs"].
    Each copy records where its episode started (EpisodeStartRecorder). `wrap_first` wraps env 0
    inside that recorder (the builder mirrors it into render=True's window, sac.rendering.ShownInViewer)."""

    def make(index: int) -> gym.Env:
        env = make_env(env_id, env_kwargs)
        if wrap_first is not None and index == 0:
            env = wrap_first(env)
        return EpisodeStartRecorder(env)

    return gym.vector.SyncVectorEnv([lambda i=i: make(i) for i in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def check_action_space(space: gym.Space) -> None:
    """SAC's squashed Gaussian needs a bounded continuous box."""
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"SAC needs a continuous Box action space; got {space}")
    if not np.issubdtype(space.dtype, np.floating):
        raise UserError(f"SAC needs a floating-point Box action space; got dtype {space.dtype}")
    if len(space.shape) != 1:
        raise UserError(f"SAC needs a 1-D Box action space; got shape {space.shape}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise UserError(f"SAC needs finite action bounds to squash into; got low={space.low}, high={space.high}")
    if not np.all(space.high > space.low):
        raise UserError(f"every action bound needs high > low; got low={space.low}, high={space.high}")


def check_observation_space(space: gym.Space) -> None:
    """The MLPs take a flat float vector: a Box of any shape, or a Dict of Boxes (both flattened)."""
    if isinstance(space, gym.spaces.Dict):
        bad = {key: sub for key, sub in space.spaces.items() if not isinstance(sub, gym.spaces.Box)}
        if bad:
            raise UserError(f"SAC here needs Box entries in a Dict observation space; got {bad}")
        for sub in space.spaces.values():
            check_observation_space(sub)
        return
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"SAC here needs a Box (or Dict of Box) observation space; got {space}")
    if int(np.prod(space.shape)) == 0:
        raise UserError(f"the observation space is empty: {space}")


def observation_dim(space: gym.spaces.Box) -> int:
    return int(np.prod(space.shape))


def check_env_config(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Make the env, reset it and take one random step: env problems surface before training starts."""
    env = make_env(env_id, env_kwargs)
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
    except Exception as exc:
        raise UserError(f"env {env_id!r} with env_kwargs {env_kwargs!r} fails on its first reset or step: "
                        f"{type(exc).__name__}: {exc}") from None
    finally:
        env.close()


def prepare_headless_rendering() -> None:
    """MuJoCo renders off-screen through EGL when there is no display (STACK.md); pygame (the
    classic-control renderer) through SDL's dummy video driver."""
    if not has_display():
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def has_display() -> bool:
    """A window can open: macOS and Windows always have a desktop; elsewhere X11 or Wayland is set."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
