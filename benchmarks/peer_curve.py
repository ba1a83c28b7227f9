#!/usr/bin/env python3
"""A peer's learning curve under sac's settings: SBX SAC trained and evaluated as `sac.train` does.

    python benchmarks/peer_curve.py --env Humanoid-v5 --steps 300000 --seed 0 \\
        --learning-starts 1000 --reward-scale 0.1 --out humanoid_sbx_seed0.csv [--venv PATH]

Why: when one of our curves falls below a published one, the same task trained by an independent
implementation with the same objective, on the same Gymnasium and MuJoCo versions and this machine,
tells an error of ours apart from a property of the task (published curves differ from ours in
MuJoCo version, task version and seeds as well).

What runs: SBX (JAX) SAC, in the peers' virtual environment of `benchmarks/peers.py` (built on first
use), with the haarnoja18 settings of sac's named MuJoCo configs: actor and critics 256x256 relu,
Adam 3e-4 for all three, batch 256, gamma 0.99, tau 0.005 every step, a 1M replay buffer, one
gradient step per env step after `--learning-starts` uniform-random steps, alpha learnt from 1.0,
and two settings SBX spells differently:
- reward scale: the training env's rewards are multiplied by `--reward-scale` (a wrapper); that is
  exactly sac's reward_scale, which multiplies the reward in the TD target only.
- target entropy: sac (as TF-Agents) takes -dim(A)/2 for the density of the action in the env's own
  box, log pi(a) including -sum(log half_range); SBX's log pi is of the action in [-1, 1]. The same
  target in SBX's units is -dim(A)/2 - sum(log half_range) (7.08 for Humanoid's [-0.4, 0.4]^17;
  -dim(A)/2 for a [-1, 1] box).
Evaluation as sac's: every `--eval-every` env steps, `--eval-episodes` episodes of the deterministic
policy (the squashed mean) on an env of its own, reset with the seeds seed + 10_000 + k, the same
initial states at every evaluation, unscaled rewards. With --stochastic-eval, the same episodes are
also played with sampled actions and their mean return printed (not written to the CSV).

Output: a CSV with sac.report's columns, `step,eval_return_mean,eval_return_min,eval_return_max,
wall_seconds`, written as the run goes (so `python -m sac.report` can draw it beside our seeds), and
one progress line per evaluation on stdout. The run cannot be resumed: it starts again from step 0.
"""
from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import child_env, default_venv, ensure_venv  # noqa: E402

# sac.report.CSV_COLUMNS, written out: the child runs in the peers' venv, where sac does not import.
CSV_COLUMNS = ["step", "eval_return_mean", "eval_return_min", "eval_return_max", "wall_seconds"]
NET_ARCH = [256, 256]


def matched_target_entropy(low, high) -> float:
    """sac's default target, -dim(A)/2 for the action's density in its own box, in [-1, 1] units."""
    half_range = [(h - lo) / 2.0 for lo, h in zip(low, high)]
    return -len(half_range) / 2.0 - sum(math.log(r) for r in half_range)


# --- the child: runs inside the peers' venv ---------------------------------------------------------

def run_child(args: argparse.Namespace) -> None:
    import gymnasium as gym
    import numpy as np
    from sbx import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    train_env = gym.wrappers.TransformReward(gym.make(args.env), lambda r: r * args.reward_scale)
    eval_env = gym.make(args.env)
    space = train_env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise SystemExit(f"peer_curve.py: {args.env} has no Box action space")
    target = matched_target_entropy(space.low.tolist(), space.high.tolist())
    model = SAC("MlpPolicy", train_env, learning_rate=3e-4, buffer_size=1_000_000,
                learning_starts=args.learning_starts, batch_size=256, tau=0.005, gamma=0.99, train_freq=1,
                gradient_steps=1, ent_coef="auto", target_entropy=target,
                policy_kwargs={"net_arch": NET_ARCH}, seed=args.seed, verbose=0)
    print(f"peer_curve: sbx SAC on {args.env}, seed {args.seed}, target entropy {target:.4f} "
          f"(in [-1, 1] units), reward scale {args.reward_scale}", flush=True)

    out = open(args.out, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    start = time.perf_counter()

    def evaluate(deterministic: bool = True) -> list[float]:
        returns = []
        for k in range(args.eval_episodes):
            obs, _ = eval_env.reset(seed=args.seed + 10_000 + k)
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return returns

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                returns = evaluate()
                wall = time.perf_counter() - start
                writer.writerow([self.num_timesteps, f"{np.mean(returns):.4f}", f"{min(returns):.4f}",
                                 f"{max(returns):.4f}", f"{wall:.1f}"])
                out.flush()
                sampled = f", sampled actions {np.mean(evaluate(False)):.1f}" if args.stochastic_eval else ""
                print(f"step {self.num_timesteps}: eval return {np.mean(returns):.1f} "
                      f"(min {min(returns):.1f}, max {max(returns):.1f}){sampled}, {wall:.0f} s", flush=True)
            return True

    model.learn(args.steps, callback=Evaluate())
    out.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Humanoid-v5", help="a Gymnasium env id with a Box action space")
    parser.add_argument("--steps", type=int, default=300_000, help="env steps to train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-starts", type=int, default=1_000, help="uniform-random steps first")
    parser.add_argument("--reward-scale", type=float, default=0.1, help="multiplies the training rewards")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--stochastic-eval", action="store_true",
                        help="also evaluate the sampled policy on the same initial states (stdout only)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--venv", type=Path, default=None,
                        help="the peers' venv (default: $SAC_PEERS_VENV or <tempdir>/sac-peers-venv)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("steps", "eval_every", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.learning_starts < 0 or not args.reward_scale > 0:
        parser.error("--learning-starts must be >= 0 and --reward-scale > 0")
    if args.child:
        run_child(args)
        return
    if not args.out.parent.is_dir():
        parser.error(f"the folder of --out, {args.out.parent}, does not exist")
    python = ensure_venv((args.venv or default_venv()).expanduser().resolve())
    cmd = [str(python), str(Path(__file__).resolve()), "--child", *sys.argv[1:]]
    sys.exit(subprocess.run(cmd, env=child_env()).returncode)


if __name__ == "__main__":
    main()
