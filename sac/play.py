"""Watch or record a trained policy.

    python -m sac.play RUN_DIR                     # newest checkpoint of a run
    python -m sac.play CHECKPOINT.pkl
    python -m sac.play ENV_ID CHECKPOINT           # the original README's form; ENV_ID must match
    options: --episodes N, --video out.mp4|out.gif, --no-render, --seed S, --stochastic

It renders to a window only where a display exists; `--video` works headless (MuJoCo through EGL,
classic control through pygame's dummy driver). The policy is rebuilt through sac.checkpoint, the
module that writes checkpoints, from plain data: nothing in the file is executed.
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
    parser.add_argument("--seed", type=int, default=0, help="seed of the env's first reset (default 0)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the squashed mean")
    args = parser.parse_args(argv)
    if len(args.target) > 2:
        parser.error("give at most ENV_ID and one run directory or checkpoint")
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}")
    if args.video is not None and args.video.suffix.lower() not in _VIDEO_SUFFIXES:
        raise UserError(f"--video must end in .mp4 or .gif, got {args.video}")
    return args


def _checkpoint_file(path: Path) -> Path:
    from sac.checkpoint import latest_checkpoint

    if path.is_dir():
        return latest_checkpoint(path)
    if not path.exists():
        raise UserError(f"{path} does not exist (expected a run directory or a model-<step>.pkl file)")
    return path


def _check_spaces(env: Any, payload: dict[str, Any], env_id: str) -> None:
    obs_shape = tuple(env.observation_space.shape)
    want = tuple(payload["observation_shape"])
    if obs_shape != want:
        raise UserError(f"{env_id} observations have shape {obs_shape}, but the checkpoint's policy "
                        f"({payload['env_id']}) takes {want}")
    low, high = env.action_space.low, env.action_space.high
    if low.shape != payload["action_low"].shape or not (
            np.allclose(low, payload["action_low"]) and np.allclose(high, payload["action_high"])):
        raise UserError(f"{env_id} actions lie in [{low}, {high}], but the checkpoint's policy "
                        f"({payload['env_id']}) acts in [{payload['action_low']}, {payload['action_high']}]")


def play(argv: list[str] | None = None) -> float:
    args = _parse(argv)
    from sac.checkpoint import Policy, load_checkpoint
    from sac.envs import has_display, make_env, prepare_headless_rendering

    *env_arg, target = args.target
    path = _checkpoint_file(Path(target))
    payload = load_checkpoint(path)
    env_id = env_arg[0] if env_arg else payload["env_id"]

    if args.video is not None:
        render_mode = "rgb_array"
        prepare_headless_rendering()
    elif not args.no_render and has_display():
        render_mode = "human"
    else:
        render_mode = None
        if not args.no_render:
            print("no display found: playing without a window (use --video PATH to record)", flush=True)
    env = make_env(env_id, payload.get("env_kwargs") or {}, render_mode=render_mode)
    try:
        _check_spaces(env, payload, env_id)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        policy = Policy(payload)
        print(f"playing {path} (step {payload['step']}) on {env_id}", flush=True)
        writer = None
        if args.video is not None:
            import imageio.v2 as imageio

            args.video.parent.mkdir(parents=True, exist_ok=True)
            fps = int(env.metadata.get("render_fps", 30))
            writer = imageio.get_writer(str(args.video), fps=fps, macro_block_size=2) if args.video.suffix.lower() == ".mp4" \
                else imageio.get_writer(str(args.video), mode="I", duration=1000.0 / fps)
        returns = []
        try:
            for episode in range(args.episodes):
                obs, _ = env.reset(seed=args.seed if episode == 0 else None)
                done, total = False, 0.0
                while not done:
                    if writer is not None:
                        writer.append_data(np.asarray(env.render()))
                    action = policy.act(np.asarray(obs, np.float32).reshape(-1), deterministic=not args.stochastic)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                if writer is not None:
                    writer.append_data(np.asarray(env.render()))
                returns.append(total)
                print(f"episode {episode} return {total:.2f}", flush=True)
        finally:
            if writer is not None:
                writer.close()
        mean = float(np.mean(returns))
        print(f"mean return {mean:.2f}", flush=True)
        if args.video is not None:
            print(f"video written to {args.video}", flush=True)
        return mean
    finally:
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
