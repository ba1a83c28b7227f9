"""`python -m sac.report` on small synthetic run directories: the plotted mean/min/max, the table's
figures and the CSVs equal values computed by hand; the IQM and its stratified-bootstrap interval
follow rliable's definitions (checked against exact enumeration of the bootstrap distribution)."""
from __future__ import annotations

import csv
import datetime
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from sac import report, rundirs
from tests.conftest import run_cli

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def _iso(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).isoformat()


def _write_run(run: Path, env_id: str, seed: int, start: float, evals: dict[int, tuple[float, float, float, float]],
               resumed_from: Path | None = None, resume_step: int | None = None) -> None:
    """A run directory as sac.train leaves it: evals maps step -> (mean, min, max, seconds after T0)."""
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"env_id": env_id, "seed": seed, "gamma": 0.99}))
    (run / "run.json").write_text(json.dumps({"status": "COMPLETED", "start_time": _iso(start)}))
    steps = sorted(evals)
    metrics = {name: {"steps": steps, "values": [evals[s][i] for s in steps], "timestamps": [_iso(evals[s][3]) for s in steps]}
               for i, name in enumerate(("eval/return_mean", "eval/return_min", "eval/return_max"))}
    (run / "metrics.json").write_text(json.dumps(metrics))
    if resumed_from is not None:
        (run / "resume.json").write_text(json.dumps({"resumed_from": str(resumed_from), "step": resume_step}))
        (resumed_from / "resumed_by.json").write_text(json.dumps({"run_dir": str(run), "step": resume_step}))


# Eval means per seed, at steps 10, 20, 30, 40 (seed 2 stops at 30).
CHEETAH = {0: [1.0, 4.0, 9.0, 16.0], 1: [3.0, 2.0, 5.0, 8.0], 2: [2.0, 6.0, 1.0]}
HOPPER = {0: [10.0], 1: [20.0], 2: [30.0], 3: [100.0]}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "grid"
    for seed, means in CHEETAH.items():
        evals = {10 * (i + 1): (m, m - 1, m + 2, 100.0 * (i + 1)) for i, m in enumerate(means)}
        cell = root / "cheetah" / f"seed{seed}" / "runs"
        if seed == 1:
            # Stopped after step 20 (its state), resumed later: the first part also logged step 30
            # before it was killed, which the resumed part redid with another value.
            first = {10: evals[10], 20: evals[20], 30: (-999.0, -999.0, -999.0, 300.0)}
            _write_run(cell / "1", "Cheetah-v5", seed, 0.0, first)
            second = {s: (*evals[s][:3], 5000.0 + 50.0 * s) for s in (30, 40)}
            _write_run(cell / "2", "Cheetah-v5", seed, 5000.0, second, resumed_from=cell / "1", resume_step=20)
        else:
            _write_run(cell / "1", "Cheetah-v5", seed, 0.0, evals)
    for seed, means in HOPPER.items():
        _write_run(root / "hop" / f"seed{seed}" / "runs" / "1", "Hop-v1", seed, 0.0, {10: (means[0], 0.0, 0.0, 5.0)})
    return root


def test_resumed_runs_are_read_whole_with_their_training_time(results):
    grouped = report.load_curves([results])
    assert sorted(grouped) == ["Cheetah-v5", "Hop-v1"]
    seed1 = next(c for c in grouped["Cheetah-v5"] if c.seed == 1)
    assert seed1.steps.tolist() == [10, 20, 30, 40]
    assert seed1.mean.tolist() == CHEETAH[1]  # step 30 from the resumed part, not the killed one's -999
    assert seed1.low.tolist() == [m - 1 for m in CHEETAH[1]] and seed1.high.tolist() == [m + 2 for m in CHEETAH[1]]
    # Part 1 ran from 0 s to its last kept entry (step 20 at 200 s); part 2 started at 5000 s.
    assert seed1.wall_seconds.tolist() == [100.0, 200.0, 200.0 + 1500.0 - 0.0, 200.0 + 2000.0]


def test_plotted_mean_min_max_equal_hand_computed(results):
    plt = report._figure_module()
    grouped = report.load_curves([results])
    fig, ax = plt.subplots()
    report.draw_env(ax, "Cheetah-v5", grouped["Cheetah-v5"], [])
    by_gid = {line.get_gid(): line for line in ax.get_lines()}
    # The mean and the band stop where the shortest seed stops (step 30); the others go on, thin.
    steps = [10, 20, 30]
    by_hand_mean = [(1 + 3 + 2) / 3, (4 + 2 + 6) / 3, (9 + 5 + 1) / 3]
    by_hand_min, by_hand_max = [1, 2, 1], [3, 6, 9]
    np.testing.assert_array_equal(by_gid["mean"].get_xdata(), steps)
    np.testing.assert_allclose(by_gid["mean"].get_ydata(), by_hand_mean, rtol=1e-12)
    for seed, means in CHEETAH.items():
        np.testing.assert_array_equal(by_gid[f"seed{seed}"].get_ydata(), means)
    band = next(c for c in ax.collections if c.get_gid() == "band")
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    assert vertices[:, 0].max() == 30
    for step, low, high in zip(steps, by_hand_min, by_hand_max):
        ys = vertices[np.isclose(vertices[:, 0], step), 1]
        assert ys.min() == low and ys.max() == high, (step, ys)
    plt.close(fig)


def test_table_and_csvs_equal_hand_computed(results, tmp_path):
    anchors = [report.Anchor("Cheetah", 20, 7.5, "Paper", "plot"), report.Anchor("Cheetah", 20, 1.0, "Other", ""),
               report.Anchor("Hop", 99, 1.0, "Never", "")]
    grouped = report.load_curves([results])
    out = tmp_path / "out"
    rows = report.write_report(grouped, out, [20, 40, 10], anchors, reps=2000)["rows"]
    by_key = {(r["env"], r["step"]): r for r in rows}
    r20 = by_key[("Cheetah-v5", 20)]
    assert (r20["seeds"], r20["mean"], r20["min"], r20["max"]) == (3, 4.0, 2.0, 6.0)
    assert r20["iqm"] == pytest.approx(4.0)  # 3 scores: rliable's trim cuts int(0.75) = 0 of each end
    assert [a.source for a in r20["anchors"]] == ["Paper", "Other"]
    r40 = by_key[("Cheetah-v5", 40)]
    assert (r40["seeds"], r40["mean"], r40["min"], r40["max"]) == (2, 12.0, 8.0, 16.0)
    hop = by_key[("Hop-v1", 10)]
    assert (hop["seeds"], hop["mean"], hop["iqm"]) == (4, 40.0, 25.0)  # IQM of 10, 20, 30, 100: mean of 20 and 30
    assert ("Hop-v1", 20) not in by_key  # no seed reached it
    table = (out / "table.md").read_text()
    assert "| Cheetah-v5 | 20 | 3 | 4.0 | 2.0 | 6.0 | 4.0 [" in table and "Paper 7.5 (plot); Other 1.0 |" in table
    assert "| Hop-v1 | 10 | 4 | 40.0 | 10.0 | 100 | 25.0 [" in table
    # Hop's 4 unequal scores give a real interval: it must hold the IQM, and the table must print it
    # low first. Its ends lie in the exact bootstrap distribution's range (4^4 resamples, float64).
    assert hop["iqm_low"] < hop["iqm"] < hop["iqm_high"]
    assert f"| 25.0 [{report._number(hop['iqm_low'])}, {report._number(hop['iqm_high'])}] |" in table
    exact = _exact_bootstrap_iqms(np.array([10.0, 20.0, 30.0, 100.0]))
    assert exact.min() <= hop["iqm_low"] and hop["iqm_high"] <= exact.max()
    for name in ("Cheetah-v5.png", "Hop-v1.png", "overview.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "Cheetah-v5" / "seed1.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(report.CSV_COLUMNS)
    assert [[float(v) for v in line] for line in lines[1:]] == [
        [10, 3.0, 2.0, 5.0, 100.0], [20, 2.0, 1.0, 4.0, 200.0], [30, 5.0, 4.0, 7.0, 1700.0], [40, 8.0, 7.0, 10.0, 2200.0]]
    # The committed CSVs alone give the same table.
    again = report.table_rows(report.load_curves([out]), [20, 40, 10], anchors, reps=2000)
    assert [(r["env"], r["step"], r["seeds"], r["mean"], r["min"], r["max"], r["iqm"]) for r in again] == [
        (r["env"], r["step"], r["seeds"], r["mean"], r["min"], r["max"], r["iqm"]) for r in rows]


def _exact_bootstrap_iqms(*tasks: np.ndarray) -> np.ndarray:
    """The IQM of every equally likely stratified resample (each task's runs drawn with replacement,
    as many as it has), in float64: the exact distribution a bootstrap samples from."""
    draws = [itertools.product(range(len(t)), repeat=len(t)) for t in tasks]
    return np.array([report.iqm(np.concatenate([t[list(d)] for t, d in zip(tasks, combo)]))
                     for combo in itertools.product(*draws)])


def test_iqm_is_rliables_trimmed_mean():
    assert report.iqm([5.0]) == 5.0
    assert report.iqm([3.0, 1.0, 2.0]) == 2.0
    assert report.iqm([100.0, 1.0, 2.0, 3.0]) == 2.5
    assert report.iqm(np.arange(8.0)) == np.mean([2, 3, 4, 5])  # int(0.25 * 8) = 2 cut at each end
    assert report.iqm(np.arange(10.0)) == np.mean([2, 3, 4, 5, 6, 7])  # int(2.5) = 2
    np.testing.assert_array_equal(report.iqm(np.array([[1.0, 9.0, 5.0, 7.0], [0.0, 0.0, 4.0, 8.0]]), axis=1), [6.0, 2.0])


def test_bootstrap_interval_matches_exact_enumeration():
    # One task of 6 runs: the bootstrap distribution has 6^6 equally likely resamples (57 distinct
    # IQMs). The percentile interval of a large bootstrap must be that exact distribution's 2.5% and
    # 97.5% quantiles (inverse CDF: 0.025 is 5+ sampling deviations from either end's jumps here).
    scores = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 20.0])
    exact = _exact_bootstrap_iqms(scores)
    point, low, high = report.stratified_bootstrap_iqm([scores], reps=200_000, seed=1)
    assert point == np.mean([2.0, 4.0, 7.0, 11.0])  # int(0.25 * 6) = 1 cut at each end
    exact_low, exact_high = np.quantile(exact, [0.025, 0.975], method="inverted_cdf")
    assert (low, high) == (exact_low, exact_high)
    assert np.mean(exact < low) < 0.025 <= np.mean(exact <= low)
    assert np.mean(exact > high) < 0.025 <= np.mean(exact >= high)


def test_bootstrap_is_stratified_by_task():
    # Each replicate keeps 3 runs of each task, so the pooled IQM never moves: [0,0,0,100,100,100]
    # trimmed by int(1.5) = 1 at each end is always 50. Pooled resampling would move it.
    point, low, high = report.stratified_bootstrap_iqm([np.zeros(3), np.full(3, 100.0)], reps=5000)
    assert (point, low, high) == (50.0, 50.0, 50.0)
    rng = np.random.default_rng(0)
    pooled = np.concatenate([np.zeros(3), np.full(3, 100.0)])
    moved = [report.iqm(pooled[rng.integers(0, 6, 6)]) for _ in range(200)]
    assert np.std(moved) > 10


def test_bootstrap_of_tasks_of_different_sizes_matches_exact_enumeration():
    # Tasks of 2 and 3 runs: 2^2 * 3^3 = 108 equally likely stratified resamples of 5 scores. Its
    # 2.5% and 97.5% quantiles (66.7 and 270) lie 4% and 0.28% (8 sampling deviations) from the
    # nearest jump of the exact CDF, so a 200,000-replicate bootstrap lands on them. Resampling every
    # task with the first task's size, or the pooled runs, gives other intervals.
    a, b = np.array([0.0, 10.0]), np.array([100.0, 200.0, 400.0])
    exact_low, exact_high = np.quantile(_exact_bootstrap_iqms(a, b), [0.025, 0.975], method="inverted_cdf")
    point, low, high = report.stratified_bootstrap_iqm([a, b], reps=200_000, seed=1)
    assert point == pytest.approx((10.0 + 100.0 + 200.0) / 3)  # int(1.25) = 1 cut at each end of the 5
    assert (low, high) == (exact_low, exact_high)


def test_report_command_line(results, tmp_path):
    anchors = tmp_path / "anchors.csv"
    anchors.write_text("# a comment\nenv,step,return,source,note\nCheetah,40,20,Someone,plot\n")
    out = tmp_path / "figures"
    done = run_cli(["-m", "sac.report", str(results), "--out", str(out), "--steps", "20,40", "--anchors",
                    str(anchors), "--reps", "1000"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| Cheetah-v5 | 40 | 2 | 12.0 | 8.0 | 16.0 |" in done.stdout and "Someone 20.0 (plot)" in done.stdout
    assert "report: 2 env(s), 7 run(s)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["Cheetah-v5", "Cheetah-v5.png", "Hop-v1", "Hop-v1.png",
                                                     "overview.png", "table.md"]
    missing = run_cli(["-m", "sac.report", str(tmp_path / "nothing"), "--out", str(out)], tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error: no such file or folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_cli(["-m", "sac.report", str(empty), "--out", str(out)], tmp_path)
    assert none.returncode == 1 and "no evaluated runs found" in none.stderr


def test_rundirs_chain_survives_a_moved_results_folder(results, tmp_path):
    moved = tmp_path / "moved"
    results.rename(moved)  # resume.json still names the old absolute path
    parts = rundirs.chain(moved / "cheetah" / "seed1")
    assert [p.name for p in parts] == ["1", "2"]


def test_default_steps_are_each_seeds_last_and_duplicates_are_named(results, tmp_path):
    grouped = report.load_curves([results])
    rows = report.table_rows(grouped, None, [], reps=100)
    assert [(r["env"], r["step"], r["seeds"]) for r in rows] == [("Cheetah-v5", 30, 3), ("Cheetah-v5", 40, 2),
                                                                 ("Hop-v1", 10, 4)]
    # The same env and seed twice (another folder): the run that got further counts, and it is said.
    _write_run(tmp_path / "other" / "runs" / "1", "Hop-v1", 2, 0.0, {10: (5.0, 5.0, 5.0, 1.0), 20: (7.0, 7.0, 7.0, 2.0)})
    said = []
    grouped = report.load_curves([results, tmp_path / "other"], warn=said.append)
    hop2 = next(c for c in grouped["Hop-v1"] if c.seed == 2)
    assert hop2.mean.tolist() == [5.0, 7.0]
    assert len(said) == 1 and said[0].startswith("Hop-v1 seed 2: two runs; using ") and "(to step 20)" in said[0]
    assert report.file_name("ALE/Pong-v5") == "ALE_Pong-v5"


def test_env_kwargs_make_another_task_with_its_own_row_files_and_anchors(results, tmp_path):
    """Ant-v5 observed without its contact forces is another task than Ant-v5 (issue 18): its own
    curve, table row, CSV folder and PNG, under the same published anchors (those name the task)."""
    run = results / "ant" / "seed0" / "runs" / "1"  # the ant config: contact forces not observed
    _write_run(run, "Ant-v5", 0, 0.0, {10: (7.0, 6.0, 8.0, 5.0)})
    (run / "config.json").write_text(json.dumps({"env_id": "Ant-v5", "seed": 0,
                                                 "env_kwargs": {"include_cfrc_ext_in_observation": False}}))
    _write_run(results / "ant_cfrc" / "seed0" / "runs" / "1", "Ant-v5", 0, 0.0, {10: (3.0, 2.0, 4.0, 5.0)})
    grouped = report.load_curves([results])
    variant = "Ant-v5+include_cfrc_ext_in_observation=False"
    assert [c.mean.tolist() for c in grouped[variant]] == [[7.0]] and [c.mean.tolist() for c in grouped["Ant-v5"]] == [[3.0]]
    anchor = report.Anchor(env="Ant", step=10, value=5.0, source="X", note="")
    rows = report.write_report(grouped, tmp_path / "out", [10], [anchor], reps=100)["rows"]
    by_env = {r["env"]: r for r in rows}
    assert by_env[variant]["mean"] == 7.0 and by_env["Ant-v5"]["mean"] == 3.0
    assert by_env[variant]["anchors"] == [anchor] == by_env["Ant-v5"]["anchors"]
    assert (tmp_path / "out" / variant / "seed0.csv").is_file() and (tmp_path / "out" / f"{variant}.png").is_file()
    again = report.load_curves([tmp_path / "out"])  # the CSVs read back as the same task
    assert again[variant][0].mean.tolist() == [7.0]
