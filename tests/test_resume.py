"""Preemption and resume from the command line: kill -9, SIGTERM and SIGINT, then `resume=`;
the resumed run ends exactly where the uninterrupted one does, and runs/ holds every metric once.

Every stop lands at a chosen step, whatever the machine's speed: the training env
(tests.custom_envs:SignalsItself-v0, Pendulum-v1 underneath) sends the signal to its own process at
that step, and where the test must act while the run is alive, the env waits for it (time-bounded)."""
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

from .conftest import cli_env, read_metrics, run_cli

pytestmark = pytest.mark.smoke

# Pendulum-v1 episodes last 200 steps: a checkpoint at a multiple of 200 falls between episodes, so
# the resumed run restarts no episode and must match the uninterrupted run exactly.
EXACT = ["env_id=tests.custom_envs:SignalsItself-v0", "seed=5", "total_steps=3200", "learning_starts=1000",
         "checkpoint_every=1600", "eval_every=800", "eval_episodes=2", "log_every=200", "hidden_sizes=[64,64]",
         "batch_size=64"]
TIMING = {"train/steps_per_second"}


def _signals(at_step: int, *names: str, pause_file: Path | None = None) -> str:
    kwargs = {"at_step": at_step, "signals": list(names)}
    if pause_file is not None:
        kwargs["pause_file"] = str(pause_file)
    return f"env_kwargs={json.dumps(kwargs)}"


def _cpu_only() -> dict[str, str]:
    """Exactness is a CPU promise (README): these runs never see a GPU."""
    return {"CUDA_VISIBLE_DEVICES": "-1"}


def _train_cli(cwd: Path, *updates: str) -> subprocess.CompletedProcess:
    (cwd / "runs").mkdir(parents=True, exist_ok=True)
    return run_cli(["-m", "sac.train", "with", *updates], cwd, env=_cpu_only())


def _wait_for_file(proc: subprocess.Popen, path: Path, timeout: float = 300) -> None:
    """Wait, at most `timeout` seconds, for `path` to appear while `proc` runs."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (status {proc.returncode}) before {path} appeared:\n{out[-2000:]}\n"
                        f"{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {path}")
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
    result = _train_cli(tmp_path / "alone", *EXACT, _signals(0))  # at_step=0: never signals
    assert result.returncode == 0, result.stderr[-3000:]
    alone = tmp_path / "alone" / "runs" / "1"

    # kill -9 at step 3000: the state of step 1600 is the newest on disk, and the 1,400 steps after it
    # have logged far more than TensorBoard's queue of 10 events, so its file holds steps past 1600.
    killed_dir = tmp_path / "killed"
    killed = _train_cli(killed_dir, *EXACT, _signals(3000, "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = killed_dir / "runs" / "1"
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints", "state")] == ["state-1600.pkl"]
    assert _max_logged_step(run) > 1600

    result = _train_cli(killed_dir, "resume=runs/1")
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
    name = signal.Signals(signum).name
    pause = tmp_path / "pause"
    updates = ["total_steps=1800", "learning_starts=1000", "checkpoint_every=1000000", "eval_every=600",
               "eval_episodes=1", "log_every=50", "hidden_sizes=[32,32]", "batch_size=32",
               "env_id=tests.custom_envs:SignalsItself-v0", _signals(1100, name, pause_file=pause)]
    (tmp_path / "runs").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sac.train", "with", *updates], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The env holds the run at step 1100 until the test lets it go: resume is refused meanwhile.
        _wait_for_file(proc, Path(f"{pause}.paused"))
        alive = run_cli(["-m", "sac.train", "with", "resume=runs/1"], tmp_path)
        assert alive.returncode == 1 and f"runs/1 is still running (process {proc.pid})" in alive.stderr, alive.stderr
        Path(f"{pause}.go").touch()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == status, err[-3000:]
    run = tmp_path / "runs" / "1"
    stopped = [line for line in err.splitlines() if line.startswith("stopped: ")]
    assert stopped == [f"stopped: {name} at step 1100: training state saved in runs/1/checkpoints/state-1100.pkl; "
                       "continue with `python -m sac.train with resume=runs/1`"], err
    assert "Traceback" not in err
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints", "state")] == ["state-1100.pkl"]
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
    assert episodes == sorted(set(episodes)) and episodes[:5] == [200, 400, 600, 800, 1000]
    final = checkpoint.load_newest_state(resumed / "checkpoints")[1]
    assert final["step"] == 1800 and final["replay"]["stream_size"] == 1800  # no warm-up step collected twice
    # The episode cut by the signal (its 100th step) was stored as truncated where it stopped.
    assert bool(final["replay"]["truncated"][0][1099]) and not final["replay"]["terminated"][0][1099]


def _two_signals_at_700(tmp_path: Path, first: str, second: str):
    """A short run that sends itself two signals at its step 700 (checkpoints every 500)."""
    return run_cli(["-m", "sac.train", "with", "env_id=tests.custom_envs:SignalsItself-v0",
                    _signals(700, first, second), "total_steps=1000", "learning_starts=400",
                    "checkpoint_every=500", "eval_every=100000", "eval_episodes=1", "log_every=100",
                    "hidden_sizes=[16]", "batch_size=16"], tmp_path)


def test_a_second_ctrl_c_stops_at_once_and_leaves_the_last_state_intact(tmp_path: Path):
    result = _two_signals_at_700(tmp_path, "SIGTERM", "SIGINT")
    assert result.returncode == 130, result.stderr[-3000:]
    assert "stopped at once" in result.stderr and "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("stopped: ")]
    run = tmp_path / "runs" / "1"
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints", "state")] == ["state-500.pkl"]
    assert checkpoint.load_newest_state(run / "checkpoints")[1]["step"] == 500
    assert json.loads((run / "run.json").read_text())["status"] == "INTERRUPTED"
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_second_sigterm_changes_nothing_the_run_still_saves_where_it_stopped(tmp_path: Path):
    # A scheduler's SIGTERM to a whole job reaches a grid's run twice: directly, and passed on by the grid.
    result = _two_signals_at_700(tmp_path, "SIGTERM", "SIGTERM")
    assert result.returncode == 143, result.stderr[-3000:]
    assert "stopped at once" not in result.stderr and "Traceback" not in result.stderr
    stopped = [line for line in result.stderr.splitlines() if line.startswith("stopped: ")]
    assert stopped and stopped[0].startswith("stopped: SIGTERM at step 700: "), result.stderr[-3000:]
    run = tmp_path / "runs" / "1"
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints", "state")] == ["state-500.pkl",
                                                                                         "state-700.pkl"]
    assert checkpoint.load_newest_state(run / "checkpoints")[1]["step"] == 700
