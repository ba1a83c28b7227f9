#!/usr/bin/env python3
"""Where the training loop's time goes: cProfile over the real loop on HalfCheetah-v5.

    pipenv run python benchmarks/profile_loop.py [--env HalfCheetah-v5] [--steps 3000] [--num-threads 0]

Runs the training loop in-process on the parts sac.train builds (learning_starts=1000, then --steps
steps of one update each, evaluation and checkpoints off) under cProfile and prints the share of wall time spent in each
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
    ("policy.py", "act"): "separate act calls (first policy step, evaluation)",
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

    from sac.builder import build_run, configure_tensorflow
    from sac.config import run_config

    configure_tensorflow(args.num_threads)
    learning_starts = 1000

    def parts(total_steps: int, learning_starts: int, seed: int):
        """The real run's parts (the builder sac.train uses); evaluation and checkpoints off."""
        return build_run(run_config(env_id=args.env, total_steps=total_steps, learning_starts=learning_starts,
                                    seed=seed, eval_every=10**9, eval_episodes=1, checkpoint_every=10**9,
                                    log_every=1000),
                         run_dir=None, stream=io.StringIO())

    # Warm up: random steps and the first compiled calls, outside the profile; then the profiled
    # steps (learning_starts 0: every step updates) reuse the warmed-up agent and its compiled call.
    warm = parts(learning_starts + 50, learning_starts, seed=0)
    warm.train()
    profiled = parts(args.steps, 0, seed=1)
    profiled.agent = warm.agent
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    profiled.train()
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
