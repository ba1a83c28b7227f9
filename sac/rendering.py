"""Pictures of a policy: an environment rendering in a process of its own, videos, and a live window.

MuJoCo's EGL/OpenGL renderer (Mesa, which links LLVM) and TensorFlow (XLA links its own LLVM) crash
when loaded into one process, whichever comes first. So rendering never happens in a process that
runs TensorFlow: an env that renders lives in a freshly spawned process (EnvProcess), and the policy
side sends it actions.

- `python -m sac.play` steps an EnvProcess with the policy and writes its frames (video_writer).
- `video_every=N` (VideoRecorder): every N steps the training run plays one evaluation episode (the
  first eval env's initial state, the deterministic policy) in an EnvProcess rendering off-screen,
  and writes runs/<id>/videos/step-<step>.mp4.
- `render=True` (Viewer, ShownInViewer): the training env 0 is mirrored into a window. The viewer's
  copy of the env starts each episode from the same random state as env 0 (its seed, or its
  generator's state) and takes the same actions, so it replays exactly what env 0 does (for any env
  whose randomness comes from its np_random) while training stays in this process, unchanged.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

import gymnasium as gym
import numpy as np

from sac.envs import episode_start, make_env, prepare_episode, prepare_headless_rendering
from sac.errors import UserError


class EnvProcess:
    """The environment (and its renderer) in a separate, freshly spawned process; they exchange
    actions, observations and frames through a pipe."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], render_mode: str | None) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self._process = context.Process(target=_env_worker, args=(child, env_id, env_kwargs, render_mode),
                                        daemon=True)
        self._process.start()
        child.close()
        status, *info = self._receive()
        self.observation_shape, self.action_low, self.action_high, self.fps = info

    def _receive(self) -> Any:
        try:
            message = self.conn.recv()
        except EOFError:
            raise UserError("the environment process died (its exit code: "
                            f"{self._process.join(5) or self._process.exitcode})") from None
        if message[0] == "error":
            raise UserError(message[1])
        return message

    def reset(self, seed: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        self.conn.send(("reset", seed))
        return self._receive()[1:]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, np.ndarray | None]:
        self.conn.send(("step", action))
        return self._receive()[1:]

    def close(self, wait_seconds: float = 10.0) -> None:
        """Ask the process to end (after what it was sent before) and wait for it, at most
        `wait_seconds`; then end it."""
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(wait_seconds)
        if self._process.is_alive():
            self._process.kill()


def _env_worker(conn: Any, env_id: str, env_kwargs: dict[str, Any], render_mode: str | None) -> None:
    if render_mode == "rgb_array":
        prepare_headless_rendering()
    try:
        env = make_env(env_id, env_kwargs, render_mode=render_mode)
        if render_mode is not None and _needs_tracking_camera(env, env_kwargs):
            # Gymnasium 1.4's MuJoCo renderer uses a fixed free camera unless a camera is named, so
            # a running HalfCheetah leaves the picture; its model's "track" camera follows the body.
            env.close()
            env = make_env(env_id, {**env_kwargs, "camera_name": "track"}, render_mode=render_mode)
    except UserError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:
        conn.send(("error", f"cannot make {env_id} with render_mode={render_mode}: {type(exc).__name__}: {exc}"))
        return
    record = render_mode == "rgb_array"
    conn.send(("ready", tuple(env.observation_space.shape), env.action_space.low, env.action_space.high,
               int(env.metadata.get("render_fps") or 30)))
    try:
        while True:
            command, argument = conn.recv()
            if command == "reset":
                obs, _ = env.reset(seed=argument)
                conn.send(("ok", obs, env.render() if record else None))
            elif command == "step":
                obs, reward, terminated, truncated, _ = env.step(argument)
                conn.send(("ok", obs, float(reward), bool(terminated or truncated),
                           env.render() if record else None))
            elif command == "start":  # a viewer: no answers, it only shows (render_mode "human")
                prepare_episode(env, argument)
                env.reset()
            elif command == "show":
                env.step(argument)
            else:
                break
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception as exc:  # report it to the policy side rather than die silently
        try:
            conn.send(("error", f"{env_id} raised {type(exc).__name__}: {exc}"))
        except (BrokenPipeError, OSError):
            pass
    finally:
        env.close()


def _needs_tracking_camera(env: Any, env_kwargs: dict[str, Any]) -> bool:
    if "camera_name" in env_kwargs or "camera_id" in env_kwargs:
        return False
    model = getattr(env.unwrapped, "model", None)
    try:
        import mujoco

        return model is not None and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0
    except (ImportError, TypeError):
        return False


def video_writer(path: Path, fps: int) -> Any:
    """An imageio writer for .mp4 (its bundled ffmpeg) or .gif (pillow)."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        return imageio.get_writer(str(path), fps=fps, macro_block_size=2)
    return imageio.get_writer(str(path), mode="I", duration=1000.0 / fps, loop=0)


def play_episode(env: EnvProcess, policy: Any, seed: int | None, writer: Any = None, stochastic: bool = False) -> float:
    """One episode of `policy` on `env` from reset(seed); each frame to `writer` if given. Returns
    the episode's return."""
    obs, frame = env.reset(seed=seed)
    policy.reset()  # a recurrent policy starts the episode from its zero state
    done, total = False, 0.0
    while not done:
        if writer is not None:
            writer.append_data(np.asarray(frame))
        action = policy.act(np.asarray(obs, np.float32).reshape(-1), stochastic=stochastic)
        obs, reward, done, frame = env.step(action)
        total += reward
    if writer is not None:
        writer.append_data(np.asarray(frame))
    return total


class VideoRecorder:
    """video_every: one evaluation episode of the deterministic policy as <directory>/step-<step>.mp4.

    The env process starts with the run, so a machine that cannot render off-screen refuses the run
    at once; a video that fails later is reported and skipped (the run goes on)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], directory: Path, seed: int,
                 stream: TextIO = sys.stdout) -> None:
        try:
            self._env = EnvProcess(env_id, env_kwargs, "rgb_array")
        except UserError as exc:
            raise UserError(f"video_every: cannot render {env_id} off-screen: {exc}") from None
        self.directory, self._seed, self._stream = Path(directory), seed, stream

    def __call__(self, policy: Any, step: int) -> Path | None:
        path = self.directory / f"step-{step}.mp4"
        partial = path.with_name(f".{path.name}.partial.mp4")
        writer = None
        try:
            writer = video_writer(partial, self._env.fps)
            total = play_episode(self._env, policy, self._seed, writer)
            writer.close()
            writer = None
            os.replace(partial, path)
        except Exception as exc:
            print(f"warning: video at step {step} failed ({type(exc).__name__}: {exc}); training goes on",
                  file=self._stream, flush=True)
            return None
        finally:
            if writer is not None:
                writer.close()
            if partial.exists():
                partial.unlink()
        print(f"video: {path} (return {total:.1f})", file=self._stream, flush=True)
        return path

    def close(self) -> None:
        self._env.close()


class Viewer:
    """render=True: a window showing a copy of training env 0 (see the module's docstring). If the
    window cannot be shown or is closed, the run says so once and trains on."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], stream: TextIO = sys.stdout) -> None:
        try:
            self._env = EnvProcess(env_id, env_kwargs, "human")
        except UserError as exc:
            raise UserError(f"render=True: cannot show {env_id}: {exc}") from None
        self._stream, self.showing = stream, True

    def _send(self, message: tuple) -> None:
        if not self.showing:
            return
        try:
            if self._env.conn.poll():  # the viewer only writes when something went wrong
                problem = self._env.conn.recv()
                raise UserError(problem[1] if problem and problem[0] == "error" else str(problem))
            self._env.conn.send(message)
        except (BrokenPipeError, OSError, EOFError, UserError) as exc:
            self.showing = False
            print(f"render: the window stopped ({exc or 'closed'}); training goes on without it",
                  file=self._stream, flush=True)

    def start(self, episode_start: dict[str, Any]) -> None:
        self._send(("start", episode_start))

    def show(self, action: np.ndarray) -> None:
        self._send(("show", np.asarray(action)))

    def close(self) -> None:
        # The window may lag behind training (it draws at its own pace): let it show what it was
        # sent, for at most a minute.
        self._env.close(wait_seconds=60.0)


class ShownInViewer(gym.Wrapper):
    """Mirrors an env's episodes into a Viewer: each reset's random start, then each action."""

    def __init__(self, env: gym.Env, viewer: Viewer) -> None:
        super().__init__(env)
        self._viewer = viewer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._viewer.start(episode_start(self.env, seed))
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple:
        self._viewer.show(action)
        return self.env.step(action)
