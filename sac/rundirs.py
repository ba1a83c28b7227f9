"""Reading what runs left on disk: a run's chain of resumed parts, its whole metrics, where it stands.

A run stopped and resumed (README "Resume after preemption") is several Sacred run directories:
runs/1 (steps 0..s1), runs/2 with resume.json pointing back to runs/1 (s1..s2), and so on. Each
part's metrics.json holds only its own steps (sac/resume.py rewrites a stopped part to exactly what
its training state recorded), so the whole curve is the parts' metrics put end to end. The grid
(sac/grid.py) and the report (sac/report.py) read runs only through this module; nothing here
imports TensorFlow or Sacred, so both answer in a moment.

A *cell* is one folder in which one run (config x seed) trains: <cell>/runs/<id>/ are its parts.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sac import checkpoint
from sac.resume import _still_running


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _run_ids(cell: Path) -> list[Path]:
    runs = Path(cell) / "runs"
    if not runs.is_dir():
        return []
    return sorted((p for p in runs.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def parts_of(head: Path) -> list[Path]:
    """The parts of the run whose newest part is `head`, oldest first (following resume.json back;
    a part recorded at a path that no longer exists is looked for beside `head`, for a results
    folder copied elsewhere)."""
    parts = [Path(head)]
    while len(parts) < 10_000:
        origin = read_json(parts[-1] / "resume.json")
        if not (isinstance(origin, dict) and origin.get("resumed_from")):
            break
        parent = Path(origin["resumed_from"])
        if not parent.is_dir():
            parent = parts[-1].parent / parent.name
        if not parent.is_dir() or parent in parts:
            break
        parts.append(parent)
    return parts[::-1]


def chain(cell: Path) -> list[Path]:
    """The parts of the cell's run, oldest first, ending at its newest run directory (the head).
    Earlier attempts that the head does not continue (a run restarted from scratch) are left out."""
    ids = _run_ids(cell)
    return parts_of(ids[-1]) if ids else []


def newest_state_step(parts: list[Path]) -> int | None:
    """The step of the newest training state of any part (states are written atomically, so a
    state file that exists is whole)."""
    steps = [int(p.stem.split("-")[1]) for part in parts for p in
             checkpoint.list_checkpoints(part / "checkpoints", kind="state")]
    return max(steps) if steps else None


def _time(text: str) -> float:
    """Sacred's naive UTC ISO time as POSIX seconds."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc).timestamp()


@dataclass
class Curve:
    """One metric of a whole run: steps ascending, values, and training wall-clock seconds at each
    step (the parts' running times added up; the time between a stop and its resume is not counted)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)


def metric_curves(parts: list[Path], names: list[str]) -> dict[str, Curve]:
    """The named metrics of a run made of `parts` (chain()), each step once: a later part's entry
    replaces an earlier part's at the same step (the resumed run redid that step)."""
    merged: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in names}
    offset = 0.0  # training seconds of the parts before this one
    for index, part in enumerate(parts):
        metrics = read_json(part / "metrics.json") or {}
        run = read_json(part / "run.json") or {}
        start = _time(run["start_time"]) if "start_time" in run else None
        # This part counts up to where the next part took over (its resume.json step).
        until = None
        if index + 1 < len(parts):
            link = read_json(parts[index + 1] / "resume.json") or {}
            until = link.get("step")
        last_time = start
        for name in set(names) | {"train/steps_per_second"}:
            entry = metrics.get(name)
            if not isinstance(entry, dict):
                continue
            for step, value, stamp in zip(entry.get("steps", []), entry.get("values", []), entry.get("timestamps", [])):
                if until is not None and step > until:
                    continue
                t = _time(stamp)
                if name in merged:
                    merged[name][int(step)] = (float(value), offset + (t - start if start is not None else 0.0))
                if last_time is None or t > last_time:
                    last_time = t
        if start is not None and last_time is not None:
            offset += last_time - start
    curves = {}
    for name, by_step in merged.items():
        steps = sorted(by_step)
        curves[name] = Curve(steps, [by_step[s][0] for s in steps], [by_step[s][1] for s in steps])
    return curves


@dataclass(frozen=True)
class CellStatus:
    """Where one cell's run stands.

    state: "missing" (no run yet), "running" (a live sac.train process trains it), "done" (a
    training state at the target step), "stopped" (stopped or killed; resumable when `step` is not
    None), "failed" (its newest part ended with an error)."""

    state: str
    head: Path | None = None  # the newest run directory
    step: int | None = None  # running: the newest logged step; otherwise the newest training state's
    steps_per_second: float | None = None  # running: the newest logged rate
    eval_return: float | None = None  # the newest evaluation's mean return
    config: dict | None = None  # the head's config.json


def inspect(cell: Path, target_steps: int) -> CellStatus:
    """Where the run in `cell` stands against `target_steps` (the total it should reach)."""
    parts = chain(cell)
    if not parts:
        return CellStatus("missing")
    head = parts[-1]
    config = read_json(head / "config.json")
    state_step = newest_state_step(parts)
    curves = metric_curves(parts, ["eval/return_mean", "train/steps_per_second"])
    evals, rates = curves["eval/return_mean"], curves["train/steps_per_second"]
    eval_return = evals.values[-1] if evals.values else None
    if _still_running(head) is not None:
        step = max([s for s in (state_step, rates.steps[-1] if rates.steps else None) if s is not None],
                   default=None)
        # The newest rate logged by the process now running (not one from before its resume).
        since = (read_json(head / "resume.json") or {}).get("step", 0) if len(parts) > 1 else 0
        rate = rates.values[-1] if rates.values and rates.steps[-1] > since else None
        return CellStatus("running", head, step, rate, eval_return, config)
    if state_step is not None and state_step >= target_steps:
        return CellStatus("done", head, state_step, None, eval_return, config)
    status = (read_json(head / "run.json") or {}).get("status")
    return CellStatus("failed" if status == "FAILED" else "stopped", head, state_step, None, eval_return, config)
