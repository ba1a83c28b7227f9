"""Watch or record a trained policy.

    python -m sac.play RUN_DIR                     # newest intact checkpoint of a run
    python -m sac.play CHECKPOINT.pkl
    python -m sac.play ENV_ID CHECKPOINT           # the original README's form; ENV_ID must match
    options: --episodes N, --video out.mp4|out.gif, --no-render, --seed S, --stochastic,
             --allow-other-env

It renders to a window only where a display exists; `--video` works headless (MuJoCo through EGL,
classic control through pygame's dummy driver). The policy is rebuilt through sac.policy (the one
policy API, the same fallback to an older checkpoint as load_policy) from plain data: nothing in the
file is executed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sac.errors import UserError

_VIDEO_SUFFIXES = (".mp4", ".gif")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sac.play", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="+", metavar="[ENV_ID] RUN_DIR_OR_CHECKPOINT",
                        help="a run directory or a model-<step>.pkl file, optionally preceded by the env id")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    parser.add_argument("--video", type=Path, default=None, help="record to this .mp4 or .gif file")
    parser.add_argument("--no-render", action="store_true", help="do not open a window")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the env's first reset and of the policy's noise with --stochastic (default 0)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the squashed mean")
    parser.add_argument("--allow-other-env", action="store_true",
                        help="play ENV_ID although the checkpoint was trained on another env (spaces must match; "
                             "the checkpoint's env_kwargs are not applied to it)")
    args = parser.parse_args(argv)
    if len(args.target) > 2:
        parser.error("give at most ENV_ID and one run directory or checkpoint")
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}")
    if args.video is not None and args.video.suffix.lower() not in _VIDEO_SUFFIXES:
        raise UserError(f"--video must end in .mp4 or .gif, got {args.video}")
    return args


class _EnvProcess:
    """The environment (and its renderer) in a separate, freshly spawned process.

    MuJoCo's EGL/OpenGL renderer (Mesa, which links LLVM) and TensorFlow (XLA links its own LLVM)
    crash when loaded into one process, whichever comes first. So the policy runs here and the env
    runs there; they exchange actions, observations and frames through a pipe.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], render_mode: str | None) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_env_worker, args=(child, env_id, env_kwargs, render_mode),
                                        daemon=True)
        self._process.start()
        child.close()
        status, *info = self._receive()
        self.observation_shape, self.action_low, self.action_high, self.fps = info

    def _receive(self) -> Any:
        try:
            message = self._conn.recv()
        except EOFError:
            raise UserError("the environment process died (its exit code: "
                            f"{self._process.join(5) or self._process.exitcode})") from None
        if message[0] == "error":
            raise UserError(message[1])
        return message

    def reset(self, seed: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        self._conn.send(("reset", seed))
        return self._receive()[1:]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, np.ndarray | None]:
        self._conn.send(("step", action))
        return self._receive()[1:]

    def close(self) -> None:
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _env_worker(conn: Any, env_id: str, env_kwargs: dict[str, Any], render_mode: str | None) -> None:
    from sac.envs import make_env, prepare_headless_rendering

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
            else:
                break
    except Exception as exc:  # report it to the policy side rather than die silently
        conn.send(("error", f"{env_id} raised {type(exc).__name__}: {exc}"))
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


def _check_spaces(env: _EnvProcess, payload: dict[str, Any], env_id: str) -> None:
    want = tuple(payload["observation_shape"])
    if env.observation_shape != want:
        raise UserError(f"{env_id} observations have shape {env.observation_shape}, but the checkpoint's policy "
                        f"({payload['env_id']}) takes {want}")
    low, high = env.action_low, env.action_high
    if low.shape != payload["action_low"].shape or not (
            np.allclose(low, payload["action_low"]) and np.allclose(high, payload["action_high"])):
        raise UserError(f"{env_id} actions lie in [{low}, {high}], but the checkpoint's policy "
                        f"({payload['env_id']}) acts in [{payload['action_low']}, {payload['action_high']}]")


def _video_writer(path: Path, fps: int) -> Any:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        return imageio.get_writer(str(path), fps=fps, macro_block_size=2)
    return imageio.get_writer(str(path), mode="I", duration=1000.0 / fps, loop=0)


def play(argv: list[str] | None = None) -> float:
    args = _parse(argv)
    from sac.envs import has_display
    from sac.policy import find_policy_file, policy_from_payload

    *env_arg, target = args.target
    path, payload = find_policy_file(Path(target))
    env_id = env_arg[0] if env_arg else payload["env_id"]
    env_kwargs = payload.get("env_kwargs") or {}
    if env_id != payload["env_id"]:
        if not args.allow_other_env:
            raise UserError(f"{path} was trained on {payload['env_id']}, not {env_id}; add --allow-other-env "
                            "to play it there anyway")
        env_kwargs = {}  # the checkpoint's env_kwargs belong to its own env

    if args.video is not None:
        render_mode = "rgb_array"
    elif not args.no_render and has_display():
        render_mode = "human"
    else:
        render_mode = None
        if not args.no_render:
            print("no display found: playing without a window (use --video PATH to record)", flush=True)
    env = _EnvProcess(env_id, env_kwargs, render_mode)
    writer = None
    try:
        _check_spaces(env, payload, env_id)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        policy = policy_from_payload(payload, seed=args.seed)
        print(f"playing {path} (step {payload['step']}) on {env_id}", flush=True)
        if args.video is not None:
            try:
                writer = _video_writer(args.video, env.fps)
            except Exception as exc:
                raise UserError(f"cannot write the video {args.video}: {type(exc).__name__}: {exc}") from None
        returns = []
        for episode in range(args.episodes):
            obs, frame = env.reset(seed=args.seed if episode == 0 else None)
            policy.reset()  # a recurrent policy starts the episode from its zero state
            done, total = False, 0.0
            while not done:
                if writer is not None:
                    writer.append_data(np.asarray(frame))
                action = policy.act(np.asarray(obs, np.float32).reshape(-1), stochastic=args.stochastic)
                obs, reward, done, frame = env.step(action)
                total += reward
            if writer is not None:
                writer.append_data(np.asarray(frame))
            returns.append(total)
            print(f"episode {episode} return {total:.2f}", flush=True)
        mean = float(np.mean(returns))
        print(f"mean return {mean:.2f}", flush=True)
        if writer is not None:
            writer.close()
            writer = None
            print(f"video written to {args.video}", flush=True)
        return mean
    finally:
        if writer is not None:
            writer.close()
        env.close()


def main(argv: list[str] | None = None) -> int:
    try:
        play(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
