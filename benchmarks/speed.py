#!/usr/bin/env python3
"""Training speed of sac, measured against the machine's limit and, optionally, against peers.

    pipenv run python benchmarks/speed.py                       # HalfCheetah-v5: limit, loop, ratio
    pipenv run python benchmarks/speed.py --envs HalfCheetah-v5,Hopper-v5 --peers   # + SB3 and SBX

In one run, one measurement at a time (they share the two cores):
  limit  steady-state updates/s of the compiled update alone, 10 fused per call (batch 256,
         256x256, the env's shapes): what the arithmetic allows on this machine; and the same
         update one per call, whose extra time per update is the cost of a compiled call;
  loop   steady-state env steps/s of `python -m sac.train` itself after learning_starts (one update
         per env step, acting with the current policy, evaluation and checkpoints off, default
         logging), its peak resident memory and the seconds from launch to the first gradient step;
  peers  SB3 and SBX with the same workload via ../shared/bench/peer_speed.py (with --peers).
Each measurement runs in its own process. Figures vary with the machine's load: compare the ratios
printed by one run, not figures from different runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = REPO.parent / "shared" / "bench" / "peer_speed.py"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _run_measured(cmd: list[str], cwd: Path) -> tuple[str, float]:
    """Run a child to completion; its stdout and its own peak resident memory in MiB."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_child_env(), stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        sys.exit(f"benchmark child failed ({' '.join(cmd)}):\n{text[-3000:]}")
    return text, usage.ru_maxrss / 1024.0


# --- limit: the compiled update alone --------------------------------------------------------------

def limit_child(env_id: str, seconds: float, fused: int, batch_size: int) -> None:
    import numpy as np
    import tensorflow as tf

    from sac.agent import SACAgent, SACSettings, default_target_entropy
    from sac.envs import make_env, observation_dim

    env = make_env(env_id)
    obs_dim, low, high = observation_dim(env.observation_space), env.action_space.low, env.action_space.high
    agent = SACAgent(obs_dim, low, high, [256, 256],
                     SACSettings(target_entropy=default_target_entropy(low.shape[0])), seed=0)
    rng = np.random.default_rng(0)
    k, b, a = fused, batch_size, low.shape[0]
    batches = {"obs": tf.constant(rng.normal(size=(k, b, obs_dim)), tf.float32),
               "action": tf.constant(rng.uniform(low, high, size=(k, b, a)), tf.float32),
               "reward": tf.constant(rng.normal(size=(k, b)), tf.float32),
               "next_obs": tf.constant(rng.normal(size=(k, b, obs_dim)), tf.float32),
               "terminated": tf.zeros((k, b), tf.float32)}
    for _ in range(3):  # compile and warm up
        agent.update_many(batches)["alpha"].numpy()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.update_many(batches)["alpha"].numpy()
        calls += 1
    print(json.dumps({"updates_per_second": calls * k / (time.perf_counter() - start)}))


def measure_limit(env_id: str, seconds: float, fused: int) -> dict:
    text, rss = _run_measured([sys.executable, __file__, "--child-limit", env_id, "--limit-seconds", str(seconds),
                               "--fused", str(fused)], REPO)
    result = json.loads(text.strip().splitlines()[-1])
    result["peak_rss_mib"] = rss
    return result


# --- loop: the training command itself ---------------------------------------------------------------

def measure_loop(env_id: str, steps: int, learning_starts: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as work:
        total = learning_starts + steps
        launch = time.time()
        _, rss = _run_measured([sys.executable, "-m", "sac.train", "with", f"env_id={env_id}", f"total_steps={total}",
                       f"learning_starts={learning_starts}", "eval_every=1000000000",
                       "checkpoint_every=1000000000", "log_every=1000", *extra], Path(work))
        (run,) = Path(work, "runs").glob("[0-9]*")
        metrics = json.loads((run / "metrics.json").read_text())["train/steps_per_second"]
        info = json.loads((run / "info.json").read_text())
    # Windows of 1000 steps, wholly after the first update's compilation and before the final
    # evaluation: from learning_starts + 1000 to total - 1000.
    windows = [(s, v) for s, v in zip(metrics["steps"], metrics["values"])
               if learning_starts + 2000 <= s < total]
    if not windows:
        sys.exit("loop measurement too short: raise --loop-steps")
    seconds = sum(1000.0 / v for _, v in windows)
    return {"steps_per_second": 1000.0 * len(windows) / seconds,
            "seconds_to_first_update": info["first_update_time"] - launch, "peak_rss_mib": rss}


# --- peers -------------------------------------------------------------------------------------------

def measure_peers(env_id: str, steps: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(PEER_SCRIPT), "--env", env_id, "--steps", str(steps)],
                         capture_output=True, text=True, check=True).stdout
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"peer=(\S+) env=\S+ sps=([\d.]+)", out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="HalfCheetah-v5", help="comma-separated env ids")
    parser.add_argument("--limit-seconds", type=float, default=30.0)
    parser.add_argument("--fused", type=int, default=10, help="updates per call for the limit")
    parser.add_argument("--loop-steps", type=int, default=6000, help="steps measured after learning_starts")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--peers", action="store_true", help="also run SB3 and SBX (peer_speed.py)")
    parser.add_argument("--peer-steps", type=int, default=6000)
    parser.add_argument("--child-limit", help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help="extra sac.train config updates, e.g. num_threads=1")
    args = parser.parse_args()
    if args.child_limit:
        limit_child(args.child_limit, args.limit_seconds, args.fused, 256)
        return

    results = []
    for env_id in args.envs.split(","):
        limit = measure_limit(env_id, args.limit_seconds, args.fused)
        single = measure_limit(env_id, args.limit_seconds, 1)
        loop = measure_loop(env_id, args.loop_steps, args.learning_starts, args.extra)
        row = {"env": env_id, "limit_updates_per_second": limit["updates_per_second"],
               "loop_steps_per_second": loop["steps_per_second"],
               "ratio": loop["steps_per_second"] / limit["updates_per_second"],
               # The same update, one per compiled call: what the exact loop could reach if the
               # env, the replay buffer and acting cost nothing; the difference is TF's per-call cost.
               "one_per_call_updates_per_second": single["updates_per_second"],
               "per_call_cost_ms": 1000.0 / single["updates_per_second"] - 1000.0 / limit["updates_per_second"],
               "loop_peak_rss_mib": loop["peak_rss_mib"],
               "seconds_to_first_update": loop["seconds_to_first_update"]}
        if args.peers:
            for name, sps in measure_peers(env_id, args.peer_steps).items():
                row[f"{name}_steps_per_second"] = sps
                row[f"sac_over_{name}"] = loop["steps_per_second"] / sps
        results.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
