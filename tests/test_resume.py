"""Preemption and resume from the command line: kill -9, SIGTERM and SIGINT, then `resume=`;
the resumed run ends exactly where the uninterrupted one does, and runs/ holds every metric once."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint

from .conftest import cli_env, read_metrics, run_cli, train

pytestmark = pytest.mark.smoke

# Pendulum-v1 episodes last 200 steps: a checkpoint at a multiple of 200 falls between episodes, so
# the resumed run restarts no episode and must match the uninterrupted run exactly.
EXACT = ["env_id=Pendulum-v1", "seed=5", "total_steps=3200", "learning_starts=1000", "checkpoint_every=1600",
         "eval_every=800", "eval_episodes=2", "log_every=200", "hidden_sizes=[64,64]", "batch_size=64"]
TIMING = {"train/steps_per_second"}


def _start(cwd: Path, *updates: str) -> subprocess.Popen:
    (cwd / "runs").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "sac.train", "with", *updates], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _metrics_steps(run: Path) -> dict[str, list[int]]:
    try:
        return {name: m["steps"] for name, m in read_metrics(run).items()}
    except (OSError, ValueError):
        return {}  # not written yet, or being written


def _max_logged_step(run: Path) -> int:
    """The latest step in the run's metrics.json or its TensorBoard files (whichever is further)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = list(_metrics_steps(run).get("loss/critic", []))
    for path in run.glob("events.out.tfevents.*"):
        steps.extend(event.step for event in EventFileLoader(str(path)).Load())
    return max(steps) if steps else -1


def _union(*runs: Path) -> dict[str, list[tuple[int, float]]]:
    merged: dict[str, list[tuple[int, float]]] = {}
    for run in runs:
        for name, m in read_metrics(run).items():
            merged.setdefault(name, []).extend(zip(m["steps"], m["values"]))
    return merged


def _tensorboard_steps(*runs: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: dict[str, list[int]] = {}
    for run in runs:
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["tensors"]:
            steps.setdefault(tag, []).extend(e.step for e in acc.Tensors(tag))
        for tag in acc.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    return steps


def _final_agent(run: Path) -> dict:
    return checkpoint.load_newest_state(run / "checkpoints")[1]["agent"]


def test_kill_9_after_a_checkpoint_then_resume_ends_exactly_like_the_run_left_alone(tmp_path: Path):
    (tmp_path / "alone").mkdir()
    alone = train(tmp_path / "alone", *EXACT)

    killed_dir = tmp_path / "killed"
    proc = _start(killed_dir, *EXACT)
    run = killed_dir / "runs" / "1"
    # Kill once the state of step 1600 is on disk and TensorBoard (or Sacred's heartbeat) has written
    # metrics past it: the killed run's files then hold steps that the resumed run will redo.
    _wait_for(proc, lambda: (run / "checkpoints" / "state-1600.pkl").exists() and _max_logged_step(run) > 1600,
              "the checkpoint at 1600 and metrics after it")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _max_logged_step(run) > 1600

    result = run_cli(["-m", "sac.train", "with", "resume=runs/1"], killed_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = killed_dir / "runs" / "2"
    assert json.loads((resumed / "resume.json").read_text())["step"] == 1600
    assert json.loads((run / "resumed_by.json").read_text())["run_dir"] == str(resumed.resolve())
    assert json.loads((resumed / "config.json").read_text())["resume"] == "runs/1"

    # Same weights, optimizer moments, alpha and counters at the end.
    a, b = _final_agent(alone), _final_agent(resumed)
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)
    # Same metrics, each step once across the two run directories (timing aside).
    expected, got = _union(alone), _union(run, resumed)
    assert set(got) == set(expected)
    for name in expected:
        if name in TIMING:
            assert [s for s, _ in got[name]] == [s for s, _ in expected[name]], name
        else:
            assert got[name] == expected[name], name
    tb_expected, tb_got = _tensorboard_steps(alone), _tensorboard_steps(run, resumed)
    assert {tag: sorted(s) for tag, s in tb_got.items()} == {tag: sorted(s) for tag, s in tb_expected.items()}

    # Resuming a finished run says so and exits 0; total_steps extends it.
    done = run_cli(["-m", "sac.train", "with", "resume=runs/1"], tmp_path / "alone")
    assert done.returncode == 0 and "already finished" in done.stdout, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "alone" / "runs").iterdir() if p.name.isdigit()) == ["1"]
    extended = run_cli(["-m", "sac.train", "with", "resume=runs/1", "total_steps=3400"], tmp_path / "alone")
    assert extended.returncode == 0, extended.stderr[-2000:]
    more = read_metrics(tmp_path / "alone" / "runs" / "2")
    assert more["eval/return_mean"]["steps"] == [3400] and min(more["loss/critic"]["steps"]) > 3200


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_state_exits_non_zero_and_resume_finishes_with_no_gap(tmp_path: Path, signum, status):
    updates = ["total_steps=1800", "learning_starts=1000", "checkpoint_every=1000000", "eval_every=600",
               "eval_episodes=1", "log_every=50", "hidden_sizes=[32,32]", "batch_size=32"]
    proc = _start(tmp_path, *updates)
    run = tmp_path / "runs" / "1"
    lines: list[str] = []

    def past_warm_up() -> bool:
        line = proc.stdout.readline()
        lines.append(line)
        return line.startswith("step ") and int(line.split()[1].split("/")[0]) >= 1100

    _wait_for(proc, past_warm_up, "step 1100")
    alive = run_cli(["-m", "sac.train", "with", "resume=runs/1"], tmp_path)  # while it still trains: refused
    assert alive.returncode == 1 and f"runs/1 is still running (process {proc.pid})" in alive.stderr, alive.stderr
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err[-3000:]
    stopped = [line for line in err.splitlines() if line.startswith("stopped: ")]
    assert len(stopped) == 1 and signal.Signals(signum).name in stopped[0] and "Traceback" not in err, err
    (state_path,) = checkpoint.list_checkpoints(run / "checkpoints", "state")
    step = checkpoint.read_payload(state_path)["step"]
    assert 1100 <= step < 1800 and f"state-{step}.pkl" in stopped[0]
    assert json.loads((run / "run.json").read_text())["status"] == "INTERRUPTED"

    result = run_cli(["-m", "sac.train", "with", "resume=runs/1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = tmp_path / "runs" / "2"
    merged = _union(run, resumed)
    # Logged every 50 steps (losses once updates start): each step exactly once, none missing.
    assert [s for s, _ in merged["train/steps_per_second"]] == list(range(50, 1801, 50))
    assert [s for s, _ in merged["loss/critic"]] == list(range(1050, 1801, 50))
    assert [s for s, _ in merged["eval/return_mean"]] == [600, 1200, 1800]
    episodes = [s for s, _ in merged["train/episode_return"]]
    assert episodes == sorted(set(episodes))
    final = checkpoint.load_newest_state(resumed / "checkpoints")[1]
    assert final["step"] == 1800 and final["replay"]["stream_size"] == 1800  # no warm-up step collected twice
    # The episode cut by the signal was stored as truncated where it stopped.
    assert bool(final["replay"]["truncated"][0][step - 1]) or step % 200 == 0
