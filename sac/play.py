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
from sac.rendering import EnvProcess, play_episode, video_writer

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


def _check_spaces(env: EnvProcess, payload: dict[str, Any], env_id: str) -> None:
    want = tuple(payload["observation_shape"])
    if env.observation_shape != want:
        raise UserError(f"{env_id} observations have shape {env.observation_shape}, but the checkpoint's policy "
                        f"({payload['env_id']}) takes {want}")
    low, high = env.action_low, env.action_high
    if low.shape != payload["action_low"].shape or not (
            np.allclose(low, payload["action_low"]) and np.allclose(high, payload["action_high"])):
        raise UserError(f"{env_id} actions lie in [{low}, {high}], but the checkpoint's policy "
                        f"({payload['env_id']}) acts in [{payload['action_low']}, {payload['action_high']}]")


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
    env = EnvProcess(env_id, env_kwargs, render_mode)
    writer = None
    try:
        _check_spaces(env, payload, env_id)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        policy = policy_from_payload(payload, seed=args.seed)
        print(f"playing {path} (step {payload['step']}) on {env_id}", flush=True)
        if args.video is not None:
            try:
                writer = video_writer(args.video, env.fps)
            except Exception as exc:
                raise UserError(f"cannot write the video {args.video}: {type(exc).__name__}: {exc}") from None
        returns = []
        for episode in range(args.episodes):
            total = play_episode(env, policy, args.seed if episode == 0 else None, writer, stochastic=args.stochastic)
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
        return 1  # as sac.train, sac.grid and sac.report (argparse's usage errors stay 2)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
