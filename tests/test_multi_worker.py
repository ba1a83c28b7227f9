"""strategy=multi_worker with two worker processes on 127.0.0.1 (free ports, a hard time bound, both
stopping by themselves): identical weights, one run directory (the chief's), a lost worker stops
the other with one line, and the pair resumes from the last training state."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint

from .conftest import cli_env, read_metrics, run_cli
from .test_bad_input import _assert_one_line_error

pytestmark = pytest.mark.smoke

RUN = ["strategy=multi_worker", "num_threads=1", "total_steps=1200", "learning_starts=400", "eval_every=400",
       "eval_episodes=1", "log_every=100", "hidden_sizes=[16]", "batch_size=32", "checkpoint_every=400",
       "worker_timeout=60", "env_id=tests.custom_envs:SignalsItself-v0"]
TIME_BOUND = 300  # seconds for a pair of workers to finish (they take about 15 s here)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(cwd: Path, *updates: str, kill_worker_1_at: int = 0, signal: str = "SIGKILL"
             ) -> list[subprocess.CompletedProcess]:
    """Start two workers of one run in `cwd` and wait (at most TIME_BOUND s) for both to end. With
    `kill_worker_1_at`, worker 1 sends itself `signal` at its own step of that number."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    env_kwargs = {"at_step": kill_worker_1_at, "signals": [signal], "only_if_env": "SAC_TEST_KILL_ME"}
    procs = []
    for index in range(2):
        env = {**cli_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        if index == 1 and kill_worker_1_at:
            env["SAC_TEST_KILL_ME"] = "1"
        args = [*RUN, f"env_kwargs={json.dumps(env_kwargs)}"] if not any(u.startswith("resume=") for u in updates) \
            else []
        procs.append(subprocess.Popen([sys.executable, "-m", "sac.train", "with", *args, *updates], cwd=cwd, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + TIME_BOUND
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    return results


def _agent_of(path: Path) -> dict:
    return checkpoint.read_state_file(path)["agent"]


def test_two_workers_train_identical_weights_into_the_chief_s_run_directory(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    chief, worker = _workers(tmp_path)
    assert chief.returncode == 0 and worker.returncode == 0, chief.stderr[-2000:] + worker.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name.isdigit())
    assert runs == ["1"]  # the other worker wrote no run directory of its own
    run = tmp_path / "runs" / "1"
    for name in ("config.json", "run.json", "metrics.json", "cout.txt", "info.json"):
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "model-1200.pkl", "model-400.pkl", "model-800.pkl", "state-1200.pkl", "state-800.pkl"]
    assert sorted(p.name for p in (run / "workers" / "1").iterdir()) == ["state-1200.pkl", "state-800.pkl"]
    metrics = read_metrics(run)
    assert metrics["loss/critic"]["steps"] == list(range(500, 1201, 100))  # steps count both workers' transitions
    assert metrics["eval/return_mean"]["steps"] == [400, 800, 1200]
    chief_state = checkpoint.read_state_file(run / "checkpoints" / "state-1200.pkl")
    worker_state = checkpoint.read_state_file(run / "workers" / "1" / "state-1200.pkl")
    a, b = chief_state["agent"], worker_state["agent"]
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)
    assert int(a["scalars"][1]) == 800  # one update per transition of the two workers after step 400
    # Each worker collected half of the transitions, from its own env streams.
    assert chief_state["replay"]["stream_size"] == worker_state["replay"]["stream_size"] == 600
    assert not np.array_equal(chief_state["replay"]["obs"], worker_state["replay"]["obs"])
    assert chief_state["num_workers"] == 2


def test_a_lost_worker_stops_the_other_with_one_line_and_the_pair_resumes(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    start = time.monotonic()
    # Worker 1 is killed at its 300th step: global step 600, after the states of step 400.
    chief, worker = _workers(tmp_path, kill_worker_1_at=300)
    assert worker.returncode == -9
    _assert_one_line_error(chief, "lost worker 1 (127.0.0.1:", "it stopped answering",
                           "runs/1/checkpoints/state-400.pkl) is intact",
                           "resume with `python -m sac.train with resume=runs/1` on every worker")
    assert time.monotonic() - start < TIME_BOUND
    assert (tmp_path / "runs" / "1" / "workers" / "1" / "state-400.pkl").is_file()

    chief, worker = _workers(tmp_path, "resume=runs/1")
    assert chief.returncode == 0 and worker.returncode == 0, chief.stderr[-2000:] + worker.stderr[-2000:]
    run = tmp_path / "runs" / "2"
    assert json.loads((run / "resume.json").read_text())["step"] == 400
    a = _agent_of(run / "checkpoints" / "state-1200.pkl")
    b = _agent_of(run / "workers" / "1" / "state-1200.pkl")
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)
    # The number of workers of a multi_worker run may not change.
    result = run_cli(["-m", "sac.train", "with", "resume=runs/2", "total_steps=1600", "strategy=default"], tmp_path)
    _assert_one_line_error(result, "runs/2 was trained by 2 worker(s); resume it with as many")


def test_a_signal_to_one_worker_stops_both_at_the_same_step(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    chief, worker = _workers(tmp_path, kill_worker_1_at=300, signal="SIGTERM")
    assert (chief.returncode, worker.returncode) == (143, 143), chief.stderr[-2000:] + worker.stderr[-2000:]
    hint = "continue with `python -m sac.train with resume=runs/1` on every worker"
    assert [line for line in chief.stderr.splitlines() if line.startswith("stopped: ")] == [
        f"stopped: a stop request of another worker at step 600: training state saved in "
        f"runs/1/checkpoints/state-600.pkl; {hint}"]
    assert [line for line in worker.stderr.splitlines() if line.startswith("stopped: ")] == [
        f"stopped: SIGTERM at step 600: training state saved in runs/1/workers/1/state-600.pkl; {hint}"]
