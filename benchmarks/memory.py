#!/usr/bin/env python3
"""Replay memory: fill a buffer of Humanoid-v5's shapes (or any env's) with a million transitions
and report its bytes and the process's peak resident memory.

    pipenv run python benchmarks/memory.py [--env Humanoid-v5] [--transitions 1000000] [--episode-length 1000]

The data are random; what is measured is the storage (float32 observations stored once, flags,
and one final observation per episode), which does not depend on the values.

    pipenv run python benchmarks/memory.py --training-run [--env HalfCheetah-v5] [--transitions 1000000]

runs `python -m sac.train` itself with a full buffer: `--transitions` uniform-random warm-up steps
fill it, then 2,000 steps with one update each, a final evaluation and a final checkpoint (policy
and training state, which includes the whole buffer). It reports the peak resident memory of
that process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sac.envs import make_env, observation_dim  # noqa: E402
from sac.replay import ReplayBuffer  # noqa: E402

GIB = 2.0**30
ONE, NO = np.ones(1, np.float32), np.zeros(1, bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Humanoid-v5")
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--episode-length", type=int, default=1000, help="steps per episode (time limit)")
    parser.add_argument("--training-run", action="store_true", help="measure a real sac.train run instead")
    args = parser.parse_args()
    if args.training_run:
        training_run(args.env, args.transitions)
        return

    env = make_env(args.env)
    obs_dim, action_dim = observation_dim(env.observation_space), env.action_space.shape[0]
    env.close()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    buffer = ReplayBuffer(args.transitions, obs_dim, action_dim, seed=0)
    rng = np.random.default_rng(0)
    chunk = rng.normal(size=(1024, obs_dim)).astype(np.float32)  # reused rows: the values do not matter
    actions = rng.uniform(-0.4, 0.4, size=(1024, action_dim)).astype(np.float32)
    start = time.perf_counter()
    for i in range(args.transitions):
        j = i % 1024
        buffer.add_batch(chunk[j:j + 1], actions[j:j + 1], ONE, chunk[(j + 1) % 1024][None], NO,
                         np.array([(i + 1) % args.episode_length == 0]))
    fill_seconds = time.perf_counter() - start
    batch = buffer.sample_stack(1, 256)  # sampling works on the full buffer
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    per = ReplayBuffer.bytes_per_transition(obs_dim, action_dim)
    print(f"env={args.env} obs_dim={obs_dim} action_dim={action_dim} transitions={len(buffer)} "
          f"bytes_per_transition={per} buffer_bytes={buffer.nbytes} buffer_gib={buffer.nbytes / GIB:.3f} "
          f"final_obs_rows={buffer.final_obs.shape[0]} naive_gib={args.transitions * (4 * (2 * obs_dim + action_dim + 1) + 2) / GIB:.3f} "
          f"process_peak_rss_gib={rss_peak:.3f} rss_before_buffer_gib={rss_before:.3f} fill_seconds={fill_seconds:.0f} "
          f"batch_obs_shape={batch['obs'].shape[1:]}")


def training_run(env_id: str, transitions: int) -> None:
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL="2")
    total = transitions + 2000
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, "-m", "sac.train", "with", f"env_id={env_id}", f"total_steps={total}",
               f"learning_starts={transitions}", "buffer_size=1000000", "eval_every=1000000000",
               "checkpoint_every=1000000000", "log_every=100000"]
        start = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            out.seek(0)
            text = out.read()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"training run failed:\n{text[-3000:]}")
        (state,) = Path(work, "runs", "1", "checkpoints").glob("state-*.pkl")
        config = json.loads(Path(work, "runs", "1", "config.json").read_text())
        print(f"env={env_id} buffer_size={config['buffer_size']} transitions_stored={total} "
              f"peak_rss_gib={usage.ru_maxrss / 2**20:.3f} training_state_file_gib={state.stat().st_size / GIB:.3f} "
              f"wall_seconds={time.perf_counter() - start:.0f}")


if __name__ == "__main__":
    main()
