#!/usr/bin/env python3
"""Training speed of sac, measured against the machine's limit and, optionally, against peers.

    pipenv run python benchmarks/speed.py                       # HalfCheetah-v5: limit, loop, ratio
    pipenv run python benchmarks/speed.py --envs HalfCheetah-v5,Hopper-v5 --peers   # + SB3 and SBX

In one run, one measurement at a time (they share the two cores):
  limit  steady-state updates/s of the loop's compiled call (`train_and_act`, built by the same
         builder as sac.train) with no env, replay or logging around it, 10 updates fused per
         call (batch 256, 256x256, the env's shapes, one action sampled): what the arithmetic
         allows on this machine; and the same call with one update, whose extra time per
         update is the cost of a compiled call;
  loop   steady-state env steps/s of `python -m sac.train` itself after learning_starts (one update
         per env step, acting with the current policy, evaluation and checkpoints off, default
         logging), its peak resident memory and the seconds from launch to the first gradient step;
  recurrent (with --recurrent) the same loop with LSTM actor and critic (the defaults: 128 units,
         sequences of 32 steps, batches of 32 sequences), beside the MLP one, and the minutes a
         30k-step run would take at that speed (Pendulum-P-v0 with --envs Pendulum-P-v0);
  strategies (with --strategies) the same loop under strategy=mirrored with cpu_replicas=2, and
         with strategy=multi_worker as two worker processes on this machine (one TensorFlow
         thread each; steps count both workers' transitions);
  peers  SB3 and SBX with the same workload via benchmarks/peers.py (with --peers; it builds its
         own virtual environment for them on first use).
Each measurement runs in its own process. Figures vary with the machine's load: compare the ratios
printed by one run, not figures from different runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = REPO / "benchmarks" / "peers.py"


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

    from sac.builder import build_run, configure_tensorflow
    from sac.config import run_config

    configure_tensorflow(0)
    parts = build_run(run_config(env_id=env_id, batch_size=batch_size, hidden_sizes=[256, 256]), run_dir=None)
    agent, space = parts.agent, parts.envs.single_action_space
    rng = np.random.default_rng(0)
    k, b, a, obs_dim = fused, batch_size, space.shape[0], agent.obs_dim
    batches = {"obs": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
               "action": rng.uniform(space.low, space.high, size=(k, b, a)).astype(np.float32),
               "reward": rng.normal(size=(k, b)).astype(np.float32),
               "next_obs": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
               "terminated": np.zeros((k, b), np.float32)}
    act_obs = rng.normal(size=(1, obs_dim)).astype(np.float32)
    for _ in range(3):  # compile and warm up
        agent.train_and_act(batches, act_obs)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.train_and_act(batches, act_obs)
        calls += 1
    print(json.dumps({"updates_per_second": calls * k / (time.perf_counter() - start)}))
    parts.close()


def measure_limit(env_id: str, seconds: float, fused: int) -> dict:
    text, rss = _run_measured([sys.executable, __file__, "--child-limit", env_id, "--limit-seconds", str(seconds),
                               "--fused", str(fused)], REPO)
    result = json.loads(text.strip().splitlines()[-1])
    result["peak_rss_mib"] = rss
    return result


# --- loop: the training command itself ---------------------------------------------------------------

def _train_command(env_id: str, total: int, learning_starts: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "sac.train", "with", f"env_id={env_id}", f"total_steps={total}",
            f"learning_starts={learning_starts}", "eval_every=1000000000", "checkpoint_every=1000000000",
            "log_every=1000", *extra]


def _steady_steps_per_second(run: Path, learning_starts: int, total: int) -> float:
    """Steps/s over the windows of 1000 steps wholly after the first update's compilation and before
    the final evaluation: from learning_starts + 1000 to total - 1000."""
    metrics = json.loads((run / "metrics.json").read_text())["train/steps_per_second"]
    windows = [(s, v) for s, v in zip(metrics["steps"], metrics["values"]) if learning_starts + 2000 <= s < total]
    if not windows:
        sys.exit("loop measurement too short: raise --loop-steps")
    return 1000.0 * len(windows) / sum(1000.0 / v for _, v in windows)


def measure_loop(env_id: str, steps: int, learning_starts: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as work:
        total = learning_starts + steps
        launch = time.time()
        _, rss = _run_measured(_train_command(env_id, total, learning_starts, extra), Path(work))
        (run,) = Path(work, "runs").glob("[0-9]*")
        info = json.loads((run / "info.json").read_text())
        return {"steps_per_second": _steady_steps_per_second(run, learning_starts, total),
                "seconds_to_first_update": info["first_update_time"] - launch, "peak_rss_mib": rss}


def measure_two_workers(env_id: str, steps: int, learning_starts: int, extra: list[str]) -> float:
    """Steps/s (the transitions of both workers) of `strategy=multi_worker` with two worker processes
    on this machine (127.0.0.1, one TensorFlow thread each), read from the chief's metrics."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    total = learning_starts + steps
    with tempfile.TemporaryDirectory() as work:
        Path(work, "runs").mkdir()
        command = _train_command(env_id, total, learning_starts, ["strategy=multi_worker", "num_threads=1", *extra])
        procs = [subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**_child_env(), "TF_CONFIG": json.dumps(
                                      {"cluster": cluster, "task": {"type": "worker", "index": i}})})
                 for i in range(2)]
        errors = [proc.communicate(timeout=3600)[1] for proc in procs]
        if any(proc.returncode for proc in procs):
            sys.exit(f"two-worker run failed:\n{errors[0][-2000:]}\n{errors[1][-2000:]}")
        (run,) = Path(work, "runs").glob("[0-9]*")
        return _steady_steps_per_second(run, learning_starts, total)


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
    parser.add_argument("--peers", action="store_true", help="also run SB3 and SBX (benchmarks/peers.py)")
    parser.add_argument("--recurrent", action="store_true",
                        help="also the loop with actor_network=lstm critic_network=lstm")
    parser.add_argument("--strategies", action="store_true",
                        help="also the loop under strategy=mirrored cpu_replicas=2 and with two local workers")
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
        if args.recurrent:
            lstm = measure_loop(env_id, args.loop_steps, args.learning_starts,
                                ["actor_network=lstm", "critic_network=lstm", *args.extra])
            row["lstm_loop_steps_per_second"] = lstm["steps_per_second"]
            row["mlp_over_lstm"] = loop["steps_per_second"] / lstm["steps_per_second"]
            row["lstm_minutes_per_30k_steps"] = 30_000 / lstm["steps_per_second"] / 60.0
        if args.strategies:
            mirrored = measure_loop(env_id, args.loop_steps, args.learning_starts,
                                    ["strategy=mirrored", "cpu_replicas=2", *args.extra])
            row["mirrored_2cpu_steps_per_second"] = mirrored["steps_per_second"]
            row["two_workers_steps_per_second"] = measure_two_workers(env_id, args.loop_steps, args.learning_starts,
                                                                      args.extra)
        if args.peers:
            for name, sps in measure_peers(env_id, args.peer_steps).items():
                row[f"{name}_steps_per_second"] = sps
                row[f"sac_over_{name}"] = loop["steps_per_second"] / sps
        results.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
