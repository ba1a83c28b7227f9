#!/usr/bin/env python3
"""Where the training loop's time goes: cProfile over the real loop on HalfCheetah-v5.

    pipenv run python benchmarks/profile_loop.py [--env HalfCheetah-v5] [--steps 3000] [--num-threads 0]

Runs `sac.loop.train_loop` in-process (learning_starts=1000, then --steps steps of one update each,
evaluation and checkpoints off) under cProfile and prints the share of wall time spent in each
phase: the compiled update-and-act call, env stepping, replay writes and sampling, and the rest
(Python loop overhead, logging). The compiled call's own split (arithmetic vs. fixed per-call cost)
comes from benchmarks/speed.py, which compares it with 10 updates fused per call.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PHASES = {  # cProfile entries (file fragment, function) -> phase
    ("agent.py", "train_and_act"): "compiled update + act call",
    ("agent.py", "act"): "separate act calls (first policy step, evaluation)",
    ("sync_vector_env.py", "step"): "env step (vector env, MuJoCo included)",
    ("replay.py", "add_batch"): "replay: store",
    ("replay.py", "sample_stack"): "replay: sample + gather",
    ("metrics.py", "scalars"): "logging (Sacred/TensorBoard/progress)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-threads", type=int, default=0)
    args = parser.parse_args()

    import tensorflow as tf

    if args.num_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.num_threads)
    from sac.agent import SACAgent, SACSettings, default_target_entropy
    from sac.envs import make_vector_env, observation_dim
    from sac.loop import Schedule, train_loop
    from sac.metrics import MetricsLogger
    from sac.replay import ReplayBuffer
    from sac.seeding import RunSeeds

    learning_starts = 1000
    envs, eval_envs = make_vector_env(args.env, {}, 1), make_vector_env(args.env, {}, 1)
    space = envs.single_action_space
    obs_dim = observation_dim(envs.single_observation_space)
    agent = SACAgent(obs_dim, space.low, space.high, [256, 256],
                     SACSettings(target_entropy=default_target_entropy(space.low.shape[0])), seed=0)
    buffer = ReplayBuffer(1_000_000, obs_dim, space.low.shape[0], seed=0)
    total = learning_starts + args.steps
    schedule = Schedule(total_steps=total, learning_starts=learning_starts, batch_size=256,
                        eval_every=10**9, checkpoint_every=10**9, log_every=1000)
    # Warm up: random steps and the first compiled calls, outside the profile.
    warm = Schedule(**{**schedule.__dict__, "total_steps": learning_starts + 50, "eval_every": 10**9})
    train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=warm,
               seeds=RunSeeds.from_seed(0), logger=MetricsLogger(None, None, total, io.StringIO()),
               save_checkpoint=lambda step: None)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer,
               schedule=Schedule(**{**schedule.__dict__, "learning_starts": 0, "total_steps": args.steps}),
               seeds=RunSeeds.from_seed(1), logger=MetricsLogger(None, None, args.steps, io.StringIO()),
               save_checkpoint=lambda step: None)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile)
    print(f"{args.env}: {args.steps} steps of one update each in {wall:.1f} s = {args.steps / wall:.1f} steps/s")
    accounted = 0.0
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for (fragment, name), phase in PHASES.items():
            if filename.endswith(fragment) and function == name:
                accounted += cumulative
                print(f"  {phase:55s} {cumulative:7.2f} s  {100 * cumulative / wall:5.1f}%  "
                      f"{1000 * cumulative / args.steps:6.2f} ms/step")
    print(f"  {'the rest (loop overhead, profiler)':55s} {wall - accounted:7.2f} s  "
          f"{100 * (wall - accounted) / wall:5.1f}%")


if __name__ == "__main__":
    main()
