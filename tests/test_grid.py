"""`python -m sac.grid`: a grid stopped halfway and started again ends complete, and no run is
started twice; bad requests are refused before anything starts; the status table says where runs stand."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sac import grid, rundirs
from tests.conftest import run_cli

pytestmark = pytest.mark.smoke

TOTAL = 400
STOP_AT = 150  # the step at which StopsItsGrid-v0 stops the grid (when armed)


def _overrides(arm_file: Path) -> list[str]:
    # whole_job: the stop reaches the run twice, as a scheduler's SIGTERM to a whole job does (directly,
    # and passed on by the grid); the run must still save its state at STOP_AT.
    kwargs = {"at_step": STOP_AT, "arm_file": str(arm_file), "whole_job": True}
    return ["env_id=tests.custom_envs:StopsItsGrid-v0", f"env_kwargs={kwargs!r}", f"total_steps={TOTAL}",
            "learning_starts=100", "eval_every=200", "eval_episodes=1", "hidden_sizes=[16,16]", "batch_size=16",
            "checkpoint_every=100", "log_every=50"]


def _grid(results: Path, seeds: str, arm_file: Path, *extra: str):
    return run_cli(["-m", "sac.grid", str(results), "--configs", "pendulum", "--seeds", seeds, *extra,
                    *_overrides(arm_file)], results.parent, timeout=900)


def _started(output: str, seed: int) -> bool:
    """Whether the grid started or resumed that seed's run."""
    return re.search(rf"(starting|resuming) pendulum seed {seed} ", output) is not None


def _runs(cell: Path) -> list[Path]:
    return sorted((p for p in (cell / "runs").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_grid_stopped_halfway_and_restarted_ends_complete_without_running_anything_twice(tmp_path):
    results, arm = tmp_path / "results", tmp_path / "arm"

    # 1. Seed 0 alone, to the end (the env is not armed).
    first = _grid(results, "0", arm, "--parallel", "1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "grid complete" in first.stdout

    # 2. Seeds 0-2, one at a time, armed: seed 0 is done (skipped), seed 1 stops the grid at step
    #    STOP_AT, seed 2 is never started.
    arm.touch()
    second = _grid(results, "0,1,2", arm, "--parallel", "1")
    assert second.returncode == 143, second.stdout[-3000:] + second.stderr[-3000:]
    assert not arm.exists()
    assert "starting pendulum seed 1" in second.stdout and not _started(second.stdout, 0)
    assert "stopped: pendulum seed 1" in second.stdout and "grid stopped" in second.stdout
    assert not (results / "pendulum" / "seed2").exists()
    stopped = rundirs.inspect(results / "pendulum" / "seed1", TOTAL)
    assert stopped.state == "stopped" and STOP_AT <= stopped.step < TOTAL

    # The status view, without starting anything.
    status = run_cli(["-m", "sac.grid", str(results), "--status"], tmp_path)
    assert status.returncode == 0, status.stderr
    lines = {line.split()[2]: line for line in status.stdout.splitlines() if line.startswith("pendulum seed")}
    assert lines["0"].split()[3] == "done" and f"{TOTAL}/{TOTAL}" in lines["0"]
    assert lines["1"].split()[3] == "stopped" and f"{stopped.step}/{TOTAL}" in lines["1"]
    assert "1 done, 1 stopped" in status.stdout

    # 3. The same command again: seed 1 resumed from its state, seed 2 started, seed 0 left alone.
    third = _grid(results, "0,1,2", arm, "--parallel", "2")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert f"resuming pendulum seed 1 from step {stopped.step}" in third.stdout
    assert "starting pendulum seed 2" in third.stdout and not _started(third.stdout, 0)
    assert "grid complete" in third.stdout

    for seed, parts in ((0, 1), (1, 2), (2, 1)):
        cell = results / "pendulum" / f"seed{seed}"
        runs = _runs(cell)
        assert len(runs) == parts, (seed, runs)  # one run directory per start or resume, nothing else
        log = (cell / "log.txt").read_text()
        assert log.count("sac: training") == 1 and log.count("sac: resuming") == parts - 1
        assert rundirs.inspect(cell, TOTAL).state == "done"
        assert rundirs.newest_state_step(runs) == TOTAL
        # Every step's metrics once along the run's parts, ending at TOTAL.
        curve = rundirs.metric_curves(rundirs.chain(cell), ["train/steps_per_second"])["train/steps_per_second"]
        assert curve.steps == list(range(50, TOTAL + 1, 50))
        assert json.loads((runs[0] / "config.json").read_text())["seed"] == seed
    resumed = json.loads((_runs(results / "pendulum" / "seed1")[1] / "resume.json").read_text())
    assert resumed["step"] == stopped.step

    # 4. Everything done: the grid starts nothing.
    fourth = _grid(results, "0,1,2", arm)
    assert fourth.returncode == 0 and not any(_started(fourth.stdout, seed) for seed in range(3))
    assert "grid complete" in fourth.stdout


@pytest.mark.parametrize("args, message", [
    (["--configs", "half_cheeta"], "unknown named config 'half_cheeta'"),
    (["--configs", "pendulum", "gama=0.9"], "unknown config entry 'gama'; did you mean 'gamma'?"),
    (["--configs", "pendulum", "seed=3"], "the grid sets seed (--seeds)"),
    (["--configs", "pendulum", "--parallel", "0"], "--parallel must be at least 1"),
    ([], "name the configs to train"),
])
def test_bad_grid_requests_are_refused_with_one_line(tmp_path, args, message):
    result = run_cli(["-m", "sac.grid", str(tmp_path / "results"), *args], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_cell_trained_with_another_config_is_refused(tmp_path):
    cell = tmp_path / "results" / "pendulum" / "seed0" / "runs" / "1"
    cell.mkdir(parents=True)
    config = grid.full_config("pendulum", {"seed": 0, "gamma": 0.9})
    (cell / "config.json").write_text(json.dumps(config))
    cells = grid.make_cells(tmp_path / "results", ["pendulum"], [0], {})
    with pytest.raises(Exception, match=r"holds a run with gamma=0.9, but this grid asks for gamma=0.99"):
        grid.check_existing(cells)
    # Entries a resume may change (more steps, other threads) are not a different experiment.
    grid.check_existing(grid.make_cells(tmp_path / "results", ["pendulum"], [0], {"gamma": 0.9, "total_steps": 10**6,
                                                                                   "num_threads": 1}))


def test_the_grid_command_line_matches_sacred(tmp_path):
    # key=value as Sacred reads it; the named config's entries with the overrides on top.
    assert grid.parse_override("hidden_sizes=[64, 64]") == ("hidden_sizes", [64, 64])
    assert grid.parse_override("env_id=Hopper-v5") == ("env_id", "Hopper-v5")
    cfg = grid.full_config("hopper", {"total_steps": 300_000, "seed": 2})
    assert (cfg["env_id"], cfg["total_steps"], cfg["learning_starts"], cfg["seed"]) == ("Hopper-v5", 300_000, 1000, 2)
    cells = grid.make_cells(tmp_path, ["hopper", "ant"], [0, 1], {})
    assert [(c.config_name, c.seed, c.directory.relative_to(tmp_path).as_posix()) for c in cells] == [
        ("hopper", 0, "hopper/seed0"), ("hopper", 1, "hopper/seed1"), ("ant", 0, "ant/seed0"), ("ant", 1, "ant/seed1")]


def test_grid_commands_start_or_resume_with_what_may_change(tmp_path):
    overrides = ["total_steps=5000", "gamma=0.9", "video_every=1000", "num_threads=1"]
    cells = grid.make_cells(tmp_path, ["pendulum"], [3], dict(grid.parse_override(t) for t in overrides))
    runner = grid.Grid(cells, overrides, parallel=2, report_every=60)
    cell = cells[0]
    fresh = runner.command(cell, rundirs.CellStatus("missing"))
    assert fresh[fresh.index("-m"):] == ["-m", "sac.train", "with", "pendulum", "seed=3", "total_steps=5000",
                                         "gamma=0.9", "video_every=1000", "num_threads=1"]
    head = cell.directory / "runs" / "2"
    resumed = runner.command(cell, rundirs.CellStatus("stopped", head=head, step=1200, resume_from=head))
    assert resumed[resumed.index("with") + 1:] == ["resume=runs/2", "total_steps=5000", "video_every=1000",
                                                   "num_threads=1"]
    # A stopped run without a training state starts again from scratch.
    assert runner.command(cell, rundirs.CellStatus("stopped", head=head, step=None)) == fresh
    # Without num_threads in the overrides, the cores are split between the runs at a time.
    split = grid.Grid(cells, ["total_steps=5000"], parallel=2, report_every=60)
    assert split.num_threads_text == f"num_threads={grid._num_threads(2)}"


def test_a_resume_that_died_while_starting_is_resumed_from_the_state_before_it(tmp_path):
    # runs/1 saved a state at step 100; runs/2 (resume=runs/1) failed before writing resume.json
    # or any state. The cell must go on from runs/1, not start from scratch.
    cell = tmp_path / "pendulum" / "seed0"
    first, second = cell / "runs" / "1", cell / "runs" / "2"
    (first / "checkpoints").mkdir(parents=True)
    (first / "checkpoints" / "state-100.pkl").write_bytes(b"")
    (first / "config.json").write_text(json.dumps({"total_steps": 400}))
    (first / "run.json").write_text(json.dumps({"status": "INTERRUPTED"}))
    second.mkdir()
    (second / "config.json").write_text(json.dumps({"total_steps": 400, "resume": "runs/1"}))
    (second / "run.json").write_text(json.dumps({"status": "FAILED"}))
    assert rundirs.chain(cell) == [first, second]
    status = rundirs.inspect(cell, 400)
    assert (status.state, status.step, status.head, status.resume_from) == ("failed", 100, second, first)
    cells = grid.make_cells(tmp_path, ["pendulum"], [0], {"total_steps": 400, "learning_starts": 100})
    command = grid.Grid(cells, ["total_steps=400"], parallel=1, report_every=60).command(cells[0], status)
    assert "resume=runs/1" in command
    # With the state gone too, the run starts afresh.
    (first / "checkpoints" / "state-100.pkl").unlink()
    fresh = rundirs.inspect(cell, 400)
    assert (fresh.step, fresh.resume_from) == (None, None)
    assert "seed=0" in grid.Grid(cells, ["total_steps=400"], parallel=1, report_every=60).command(cells[0], fresh)


@pytest.mark.parametrize("states, parallel, expected", [
    # Two runs left with two slots: 100 steps/s each -> 80,000 steps in 400 s.
    ([("running", 10_000, 100.0), ("running", 10_000, 100.0)], 2, "80000 steps to go, about 0:06:40 at 2 at a time"),
    # One run left cannot use a second slot: 40,000 steps at 100 steps/s.
    ([("done", 50_000, None), ("running", 10_000, 100.0)], 2, "40000 steps to go, about 0:06:40 at 1 at a time"),
    # The grid cannot end before its slowest run: 45,000 steps at 50 steps/s is 900 s, longer than
    # the 55,000 steps of both at 75 steps/s each on two slots (367 s).
    ([("running", 40_000, 100.0), ("running", 5_000, 50.0)], 2, "55000 steps to go, about 0:15:00 at 2 at a time"),
])
def test_the_status_eta_counts_the_runs_left_and_the_slowest_run(monkeypatch, tmp_path, states, parallel, expected):
    cells = [grid.Cell("pendulum", seed, tmp_path / f"seed{seed}", {"total_steps": 50_000})
             for seed in range(len(states))]
    by_dir = {cell.directory: rundirs.CellStatus(state, None, step, rate) for cell, (state, step, rate) in zip(cells, states)}
    monkeypatch.setattr(grid.rundirs, "inspect", lambda directory, total: by_dir[directory])
    assert expected in grid.status_table(cells, parallel)


def _recorded_csv(folder: Path, task: str, seed: int, last_step: int) -> Path:
    path = folder / task / f"seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{step},{-step / 100},{-step / 50},{-step / 200},{step / 10}" for step in range(1000, last_step + 1, 1000)]
    path.write_text("step,eval_return_mean,eval_return_min,eval_return_max,wall_seconds\n" + "\n".join(rows) + "\n")
    return path


def test_cells_whose_curve_is_recorded_to_total_steps_are_neither_run_nor_counted(tmp_path):
    # Curves committed from a machine that is gone (sac.report's CSVs): Pendulum-v1 seed 0 to step
    # 4000 and seed 1 only to 3000, both in one folder; seed 2 in another folder, to 4000.
    first, second = tmp_path / "first", tmp_path / "second"
    _recorded_csv(first, "Pendulum-v1", 0, 4000)
    _recorded_csv(first, "Pendulum-v1", 1, 3000)
    _recorded_csv(second, "Pendulum-v1", 2, 4000)
    _recorded_csv(second, "Pendulum-v1", 0, 2000)  # a shorter curve of seed 0 (the furthest counts)
    _recorded_csv(second, "Pendulum-v1+g=9.0", 1, 4000)  # another task (env_kwargs), not seed 1's curve
    results = tmp_path / "results"
    cells = grid.make_cells(results, ["pendulum"], [0, 1, 2], {"total_steps": 4000})
    left, done = grid.split_recorded(cells, grid.recorded_curves([first, second]))
    assert [c.seed for c in left] == [1]
    assert [(c.seed, p) for c, p in done] == [(0, first / "Pendulum-v1" / "seed0.csv"),
                                              (2, second / "Pendulum-v1" / "seed2.csv")]
    # A longer total makes seed 0's curve too short; env_kwargs make another task.
    recorded = grid.recorded_curves([first, second])
    cells = grid.make_cells(results, ["pendulum"], [0], {"total_steps": 5000})
    assert grid.split_recorded(cells, recorded) == (cells, [])
    cells = grid.make_cells(results, ["pendulum"], [0, 1], {"total_steps": 4000, "env_kwargs": {"g": 9.0}})
    left, done = grid.split_recorded(cells, recorded)
    assert [c.seed for c in left] == [0] and [c.seed for c, _ in done] == [1]

    # The command line: --status lists the cell still to run only; a grid of recorded cells starts
    # nothing and is complete.
    status = run_cli(["-m", "sac.grid", str(results), "--configs", "pendulum", "--seeds", "0,1,2", "--status",
                      "--recorded", str(first), "--recorded", str(second), "total_steps=4000"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "recorded: pendulum seed 0 " in status.stdout and "recorded: pendulum seed 2 " in status.stdout
    assert re.search(r"^pendulum seed 1 +missing", status.stdout, re.M)
    assert not re.search(r"^pendulum seed [02] ", status.stdout, re.M) and "grid: 1 missing" in status.stdout
    run = run_cli(["-m", "sac.grid", str(results), "--configs", "pendulum", "--seeds", "0,2", "--recorded", str(first),
                   "--recorded", str(second), "total_steps=4000"], tmp_path)
    assert run.returncode == 0 and "grid complete" in run.stdout, run.stdout + run.stderr
    assert "starting" not in run.stdout and not (results / "pendulum").exists()
    missing = run_cli(["-m", "sac.grid", str(results), "--configs", "pendulum", "--recorded", str(tmp_path / "nope")],
                      tmp_path)
    assert missing.returncode == 1 and "error: --recorded: no such folder:" in missing.stderr
