"""How a saved policy's episodes end, on the MuJoCo tasks that end an episode when the body leaves a
"healthy" height range (Ant, Humanoid: torso z; Hopper, Walker2d: torso z of the planar model).

    python benchmarks/episode_ends.py RUN_DIR_OR_CHECKPOINT [--episodes 30] [--seed 1000] [--stochastic]

Plays the deterministic policy (the squashed mean, as evaluation does; with --stochastic, sampled
actions, as training acts) for N episodes from resets seeded seed, seed+1, ... and prints the mean
return and, per episode end, whether the episode ran to its time limit or was terminated with the
torso below or above `healthy_z_range` (or for another reason, such as Hopper's and Walker2d's angle
limits), then the reward's terms as the env reports them (info["reward_*"]: forward, healthy,
control and contact costs), summed per episode and averaged. Last, the policy's spread over the states it visited: the median over states and action
dimensions of the pre-tanh standard deviation and of |tanh(mean)| (1 at the action box's bounds).
docs/validation.md uses it to say why an evaluation is low: short episodes (and which way they
ended) rather than slow ones, and a mean action far from what the noisy policy does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sac.envs import make_env  # noqa: E402
from sac.policy import load_policy  # noqa: E402

Z_INDEX = {"Ant": 2, "Humanoid": 2, "Hopper": 1, "Walker2d": 1}  # qpos index of the torso's height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run directory or a model-<step>.pkl file")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000, help="the first episode's reset seed")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the squashed mean")
    args = parser.parse_args(argv)

    policy = load_policy(args.path, seed=args.seed)
    if policy.recurrent:
        parser.error("recurrent policies are not supported here (the spread needs the feed-forward actor)")
    family = policy.env_id.split(":")[-1].split("-")[0]
    if family not in Z_INDEX:
        parser.error(f"{policy.env_id}: only {', '.join(Z_INDEX)} end episodes by height")
    env = make_env(policy.env_id, policy.env_kwargs)
    low, high = env.unwrapped._healthy_z_range
    returns, lengths, ends, visited, terms = [], [], [], [], {}
    for i in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + i)
        total, steps, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            visited.append(np.asarray(obs, np.float32).reshape(-1))
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, stochastic=args.stochastic))
            total, steps = total + float(reward), steps + 1
            for key in (k for k in info if k.startswith("reward_")):
                terms.setdefault(key, np.zeros(args.episodes))[i] += float(info[key])
        z = float(env.unwrapped.data.qpos[Z_INDEX[family]])
        ends.append("time limit" if not terminated else "below" if z < low else "above" if z > high else "other")
        returns.append(total)
        lengths.append(steps)
    returns_array = np.array(returns)
    acting = "sampled actions" if args.stochastic else "deterministic (squashed mean)"
    print(f"{args.path} (step {policy.step}, {policy.env_id}), {acting}: mean return {returns_array.mean():.0f} "
          f"over {args.episodes} episodes (reset seeds {args.seed}..{args.seed + args.episodes - 1})")
    for kind in ("time limit", "above", "below", "other"):
        chosen = [i for i, end in enumerate(ends) if end == kind]
        if not chosen:
            continue
        label = {"time limit": "ran to the time limit", "above": f"torso above {high} (terminated)",
                 "below": f"torso below {low} (terminated)", "other": "terminated otherwise"}[kind]
        print(f"  {len(chosen):3d} {label}: mean return {returns_array[chosen].mean():.0f}, "
              f"lengths {min(lengths[i] for i in chosen)}-{max(lengths[i] for i in chosen)}")
    if terms:
        print("  reward terms per episode (mean): " + ", ".join(f"{k[len('reward_'):]} {v.mean():.1f}"
                                                              for k, v in sorted(terms.items())))
    mean, log_std = policy.actor(np.stack(visited))
    print(f"  policy spread over the {len(visited)} states visited: median pre-tanh std "
          f"{np.median(np.exp(log_std.numpy())):.3f}, median |tanh(mean)| {np.median(np.abs(np.tanh(mean.numpy()))):.3f}")
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
