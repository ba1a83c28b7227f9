"""`python -m sac.report RESULTS [...] --out DIR --steps 100000,300000`: learning curves and a table.

Reads runs (a grid's results folder, a runs/ folder, single run directories, or a folder of the
CSVs this command writes) and writes into DIR:
  <env>.png      per env: the deterministic eval return against env steps, the mean over seeds
                 (line) with the min/max band over seeds (as TF-Agents' README describes its plots),
                 and each seed's own curve (thin)
  overview.png   every env's panel in one figure
  table.md       per env and chosen step: seeds, mean, min, max over seeds, and the interquartile
                 mean (IQM) with its 95% stratified-bootstrap interval (rliable: Agarwal et al. 2021,
                 "Deep RL at the Edge of the Statistical Precipice"), beside the published figures at
                 that step (--anchors, a CSV kept in the repository with its sources)
  <env>/seed<N>.csv  per run: step,eval_return_mean,eval_return_min,eval_return_max,wall_seconds
                 (min and max over that evaluation's episodes; wall_seconds: training time, the
                 parts of a resumed run added up)
Each seed's eval curve is its run's eval/return_mean metric (sac.train's evaluation of the
deterministic policy every eval_every steps); a resumed run's parts are put end to end
(sac/rundirs.py). Plots are drawn with matplotlib's Agg backend: no display needed.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sac import rundirs
from sac.errors import UserError

CSV_COLUMNS = ("step", "eval_return_mean", "eval_return_min", "eval_return_max", "wall_seconds")
_DEFAULT_ANCHORS = Path(__file__).resolve().parent.parent / "benchmarks" / "anchors.csv"


@dataclass
class SeedCurve:
    """One run's evaluation curve."""

    env_id: str
    seed: int
    steps: np.ndarray  # int, ascending
    mean: np.ndarray  # the mean return over the evaluation's episodes
    low: np.ndarray  # the lowest episode return of each evaluation
    high: np.ndarray  # the highest
    wall_seconds: np.ndarray
    source: str  # where it was read from
    config: dict | None = None


# --- Reading runs --------------------------------------------------------------------------------


def _heads(root: Path) -> list[Path]:
    """Newest parts of the runs below `root`: run directories that no other run continues."""
    runs = [p.parent for p in sorted(Path(root).rglob("run.json"))
            if "_sources" not in p.parts and (p.parent / "config.json").is_file()]
    continued = {part.resolve() for run in runs for part in rundirs.parts_of(run)[:-1]}
    return [run for run in runs if run.resolve() not in continued]


def curve_of_run(head: Path) -> SeedCurve | None:
    """The eval curve of the run whose newest part is `head` (None if it has no evaluation yet)."""
    parts = rundirs.parts_of(head)
    # The experiment is the config the run started with; its entropy target as resolved there
    # (info.json): a resumed part's config names the number a None resolved to (sac/resume.py).
    config = rundirs.read_json(parts[0] / "config.json") or {}
    info = rundirs.read_json(parts[0] / "info.json") or {}
    if isinstance(info, dict) and "target_entropy" in info:
        config = {**config, "target_entropy": info["target_entropy"]}
    curves = rundirs.metric_curves(parts, ["eval/return_mean", "eval/return_min", "eval/return_max"])
    mean = curves["eval/return_mean"]
    if not mean.steps:
        return None
    by_step = {name: dict(zip(c.steps, c.values)) for name, c in curves.items()}
    steps = np.asarray(mean.steps, dtype=np.int64)
    low = np.array([by_step["eval/return_min"].get(s, np.nan) for s in mean.steps])
    high = np.array([by_step["eval/return_max"].get(s, np.nan) for s in mean.steps])
    return SeedCurve(task_label(config), int(config.get("seed", 0)), steps, np.asarray(mean.values, float),
                     low, high, np.asarray(mean.wall_seconds, float), str(head), config)


def task_label(config: dict[str, Any]) -> str:
    """What a run's curve is grouped and named by: its env id, and its env_kwargs when it has any
    (Ant-v5+include_cfrc_ext_in_observation=False: another observation is another task to compare)."""
    kwargs = config.get("env_kwargs") or {}
    extra = "".join(f"+{key}={kwargs[key]}" for key in sorted(kwargs)) if isinstance(kwargs, dict) else ""
    return f"{config.get('env_id')}{extra}"


def read_csv_curve(path: Path, env_id: str) -> SeedCurve:
    match = re.fullmatch(r"seed(\d+)\.csv", path.name)
    if not match:
        raise UserError(f"{path}: expected a file named seed<N>.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise UserError(f"{path}: expected the columns {','.join(CSV_COLUMNS)}")
    column = {name: np.array([float(r[name]) for r in rows]) for name in CSV_COLUMNS}
    return SeedCurve(env_id, int(match.group(1)), column["step"].astype(np.int64), column["eval_return_mean"],
                     column["eval_return_min"], column["eval_return_max"], column["wall_seconds"], str(path))


def csv_curves(folder: Path) -> list[SeedCurve]:
    """The curves of a folder of this module's CSVs, <task>/seed<N>.csv (the task is the folder's name)."""
    return [read_csv_curve(p, p.parent.name) for p in sorted(Path(folder).glob("*/seed*.csv"))]


def furthest_per_seed(curves: list[SeedCurve], warn: Any = None) -> dict[tuple[str, int], SeedCurve]:
    """Per (env id, seed), the curve that got furthest (the first of equals; the others are named
    through `warn`, a function taking a message)."""
    chosen: dict[tuple[str, int], SeedCurve] = {}
    for curve in curves:
        key = (curve.env_id, curve.seed)
        if key in chosen:
            kept, dropped = sorted((chosen[key], curve), key=lambda c: -int(c.steps[-1]))
            chosen[key] = kept
            if warn is not None:
                warn(f"{curve.env_id} seed {curve.seed}: two runs; using {kept.source} (to step "
                     f"{kept.steps[-1]}), not {dropped.source} (to step {dropped.steps[-1]})")
        else:
            chosen[key] = curve
    return chosen


def load_curves(paths: list[Path], warn: Any = None) -> dict[str, list[SeedCurve]]:
    """Every run below `paths`, grouped by env id; per env and seed the run that got furthest (the
    others are named through `warn`, a function taking a message)."""
    found: list[SeedCurve] = []
    for path in paths:
        if not Path(path).exists():
            raise UserError(f"no such file or folder: {path}")
        found += [curve for curve in map(curve_of_run, _heads(path)) if curve is not None]
        found += csv_curves(path)
    grouped: dict[str, list[SeedCurve]] = {}
    for (env_id, _), curve in sorted(furthest_per_seed(found, warn).items()):
        grouped.setdefault(env_id, []).append(curve)
    if not grouped:
        raise UserError(f"no evaluated runs found in {', '.join(map(str, paths))}")
    return grouped


def config_differences(curves: list[SeedCurve]) -> list[str]:
    """Config entries (other than the seed and those a resume may change) that differ between runs."""
    from sac.changeable import fixed_entries

    configs = [fixed_entries(c.config) for c in curves if c.config]
    keys = sorted({k for cfg in configs for k in cfg} - {"seed"})
    return [k for k in keys if len({json.dumps(cfg.get(k), sort_keys=True) for cfg in configs}) > 1]


# --- Statistics ----------------------------------------------------------------------------------------


@dataclass
class SeedStats:
    """Per step, over the seeds that reached it: how many, their mean, min and max."""

    steps: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def across_seeds(curves: list[SeedCurve], common_only: bool = False) -> SeedStats:
    """With `common_only`, only up to the last step every seed reached."""
    steps = np.unique(np.concatenate([c.steps for c in curves]))
    if common_only:
        steps = steps[steps <= min(int(c.steps[-1]) for c in curves)]
    table = np.full((len(curves), len(steps)), np.nan)
    for row, curve in enumerate(curves):
        kept = np.isin(curve.steps, steps)
        table[row, np.searchsorted(steps, curve.steps[kept])] = curve.mean[kept]
    present = ~np.isnan(table)
    with np.errstate(invalid="ignore"):
        return SeedStats(steps, present.sum(0), np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0))


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Interquartile mean as rliable computes it (scipy.stats.trim_mean with 25% cut): sort, drop
    int(0.25 n) scores at each end, average the rest. With fewer than 4 scores nothing is dropped."""
    scores = np.asarray(scores, dtype=np.float64)
    if axis is None:
        scores, axis = scores.reshape(-1), 0
    n = scores.shape[axis]
    cut = int(0.25 * n)
    ordered = np.sort(scores, axis=axis)
    return np.take(ordered, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def stratified_bootstrap_iqm(scores_by_task: list[np.ndarray], reps: int = 50_000, confidence: float = 0.95,
                             seed: int = 0) -> tuple[float, float, float]:
    """The IQM of all runs of all tasks, with rliable's stratified-bootstrap percentile interval:
    each replicate resamples, with replacement and within each task separately, as many runs as
    the task has, and takes the IQM of them all. Returns (point estimate, low, high)."""
    rng = np.random.default_rng(seed)
    point = float(iqm(np.concatenate([np.asarray(s, float) for s in scores_by_task])))
    samples = []
    for scores in scores_by_task:
        scores = np.asarray(scores, dtype=np.float64)
        samples.append(scores[rng.integers(0, len(scores), size=(reps, len(scores)))])
    replicates = iqm(np.concatenate(samples, axis=1), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return point, float(low), float(high)


# --- Anchors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    env: str  # without the version: HalfCheetah
    step: int
    value: float
    source: str  # short name shown in the table
    note: str


def base_env(env_id: str) -> str:
    """The task an anchor names: Ant for Ant-v5 and for Ant-v5+<env_kwargs>."""
    return re.sub(r"-v\d+$", "", env_id.split("+")[0].split(":")[-1])


def read_anchors(path: Path) -> list[Anchor]:
    """benchmarks/anchors.csv: env,step,return,source,note (lines starting with # are comments)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    try:
        return [Anchor(r["env"], int(float(r["step"])), float(r["return"]), r["source"], r.get("note", ""))
                for r in rows]
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path}: expected columns env,step,return,source,note ({exc})") from None


# --- Output ------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _steps_text(step: int) -> str:
    if step % 1_000_000 == 0:
        return f"{step // 1_000_000}M"
    if step % 1000 == 0:
        return f"{step // 1000}k"
    return str(step)


def table_rows(grouped: dict[str, list[SeedCurve]], steps: list[int] | None, anchors: list[Anchor],
               reps: int = 50_000) -> list[dict[str, Any]]:
    """Per env and chosen step (None: each seed's last step of that env): the figures the table shows."""
    rows = []
    for env_id, curves in grouped.items():
        for step in steps if steps else sorted({int(c.steps[-1]) for c in curves}):
            scores = np.array([c.mean[c.steps == step][0] for c in curves if np.any(c.steps == step)])
            if scores.size == 0:
                continue
            point, low, high = stratified_bootstrap_iqm([scores], reps=reps)
            rows.append({"env": env_id, "step": step, "seeds": int(scores.size), "mean": float(scores.mean()),
                         "min": float(scores.min()), "max": float(scores.max()), "iqm": point, "iqm_low": low,
                         "iqm_high": high, "anchors": [a for a in anchors if a.env == base_env(env_id) and a.step == step]})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| Env | Steps | Seeds | Mean | Min | Max | IQM [95% CI] | Published at this step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = "; ".join(f"{a.source} {_number(a.value)}" + (f" ({a.note})" if a.note else "")
                               for a in r["anchors"]) or "-"
        lines.append(f"| {r['env']} | {_steps_text(r['step'])} | {r['seeds']} | {_number(r['mean'])} | "
                     f"{_number(r['min'])} | {_number(r['max'])} | {_number(r['iqm'])} "
                     f"[{_number(r['iqm_low'])}, {_number(r['iqm_high'])}] | {published} |")
    return "\n".join(lines) + "\n"


# Marker and colour per anchor source (in the sources' alphabetical order).
_ANCHOR_STYLES = [("s", "tab:green"), ("^", "tab:purple"), ("P", "tab:red"), ("X", "black"), ("D", "tab:orange")]


def draw_env(ax: Any, env_id: str, curves: list[SeedCurve], anchors: list[Anchor]) -> SeedStats:
    """One env's panel: each seed thin, the mean over seeds with the min/max band up to the last step
    every seed reached (beyond it only the seeds that went on, thin). Returns what it drew."""
    stats = across_seeds(curves, common_only=True)
    for curve in curves:
        ax.plot(curve.steps, curve.mean, color="tab:blue", alpha=0.35, linewidth=0.8, label=f"seed {curve.seed}",
                gid=f"seed{curve.seed}")
    ax.fill_between(stats.steps, stats.low, stats.high, color="tab:blue", alpha=0.2, linewidth=0,
                    label="min/max over seeds", gid="band")
    ax.plot(stats.steps, stats.mean, color="tab:blue", linewidth=2, label=f"mean of {len(curves)} seed(s)", gid="mean")
    last = max(int(c.steps[-1]) for c in curves)
    sources = sorted({a.source for a in anchors})  # each source keeps its style in every panel
    labelled: set[str] = set()
    for anchor in anchors:
        if anchor.env == base_env(env_id) and anchor.step <= last * 1.05:
            marker, color = _ANCHOR_STYLES[sources.index(anchor.source) % len(_ANCHOR_STYLES)]
            ax.scatter([anchor.step], [anchor.value], marker=marker, color=color, zorder=3, s=28,
                       label=None if anchor.source in labelled else f"{anchor.source} (published)")
            labelled.add(anchor.source)
    ax.set_title(env_id, fontsize=10)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("eval return (deterministic)")
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    return stats


def file_name(env_id: str) -> str:
    """An env id (or task label) as a file name (ALE/Pong-v5 -> ALE_Pong-v5; + and = stay)."""
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", env_id)


def _figure_module() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: files only, no window
    import matplotlib.pyplot as plt

    return plt


def write_report(grouped: dict[str, list[SeedCurve]], out: Path, steps: list[int] | None, anchors: list[Anchor],
                 reps: int = 50_000) -> dict[str, Any]:
    """Write the PNGs, the table and the per-seed CSVs into `out`; returns the table rows."""
    plt = _figure_module()
    out.mkdir(parents=True, exist_ok=True)
    for env_id, curves in grouped.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        draw_env(ax, env_id, curves, anchors)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / f"{file_name(env_id)}.png", dpi=110)
        plt.close(fig)
        (out / file_name(env_id)).mkdir(exist_ok=True)
        for curve in curves:
            with open(out / file_name(env_id) / f"seed{curve.seed}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(CSV_COLUMNS)
                for i in range(len(curve.steps)):
                    writer.writerow([int(curve.steps[i]), repr(float(curve.mean[i])), repr(float(curve.low[i])),
                                     repr(float(curve.high[i])), f"{curve.wall_seconds[i]:.1f}"])
    columns = min(3, len(grouped))
    rows_of_panels = -(-len(grouped) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(4.5 * columns, 3.4 * rows_of_panels), squeeze=False)
    for ax, (env_id, curves) in zip(axes.flat, grouped.items()):
        draw_env(ax, env_id, curves, anchors)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(grouped):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "overview.png", dpi=100)
    plt.close(fig)
    rows = table_rows(grouped, steps, anchors, reps=reps)
    (out / "table.md").write_text(markdown_table(rows))
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sac.report", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("paths", nargs="+", type=Path, help="results folders, runs/ folders, run directories or CSV folders")
    parser.add_argument("--out", type=Path, required=True, help="where the PNGs, table.md and CSVs go")
    parser.add_argument("--steps", default="", help="the table's steps, comma-separated (default: each seed's last step, per env)")
    parser.add_argument("--anchors", type=Path, default=_DEFAULT_ANCHORS,
                        help="published figures, env,step,return,source,note (default benchmarks/anchors.csv)")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap replicates (rliable's default 50,000)")
    args = parser.parse_args(argv)
    try:
        steps = [int(float(s)) for s in args.steps.split(",") if s.strip()] or None
        grouped = load_curves(args.paths, warn=lambda message: print(f"warning: {message}", file=sys.stderr))
        anchors = read_anchors(args.anchors) if args.anchors and args.anchors.is_file() else []
        for env_id, curves in grouped.items():
            differing = config_differences(curves)
            if differing:
                print(f"warning: the {env_id} runs differ in {', '.join(differing)}", file=sys.stderr)
            for step in steps or []:
                if step <= max(int(c.steps[-1]) for c in curves) and not any(np.any(c.steps == step) for c in curves):
                    print(f"warning: no {env_id} run was evaluated at step {step} (its table has no row there)",
                          file=sys.stderr)
        result = write_report(grouped, args.out, steps, anchors, reps=args.reps)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(markdown_table(result["rows"]), end="")
    print(f"report: {len(grouped)} env(s), {sum(len(c) for c in grouped.values())} run(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
