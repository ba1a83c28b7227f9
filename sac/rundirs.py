"""Reading what runs left on disk: a run's chain of resumed parts, its whole metrics, where it stands.

A run stopped and resumed (docs/resume.md) is several Sacred run directories:
runs/1 (steps 0..s1), runs/2 with resume.json pointing back to runs/1 (s1..s2), and so on. Each
part's metrics.json holds only its own steps (sac/resume.py rewrites a stopped part to exactly what
its training state recorded), so the whole curve is the parts' metrics put end to end. The grid
(sac/grid.py) and the report (sac/report.py) read runs only through this module; nothing here
imports TensorFlow or Sacred, so both answer in a moment.

A *cell* is one folder in which one run (config x seed) trains: <cell>/runs/<id>/ are its parts.
"""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sac import checkpoint
from sac.kinds import CellState
from sac.runfiles import process_alive, read_json, still_running


def _run_ids(cell: Path) -> list[Path]:
    runs = Path(cell) / "runs"
    if not runs.is_dir():
        return []
    return sorted((p for p in runs.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _origin(part: Path) -> Path | None:
    """The run `part` resumed: its resume.json's link, else (a resume that died while starting,
    before writing resume.json) the resume= entry of its config.json, relative to the folder the
    run was started in (runs/<id>/../..)."""
    link = read_json(part / "resume.json")
    target = link.get("resumed_from") if isinstance(link, dict) else None
    if not target:
        config = read_json(part / "config.json")
        target = config.get("resume") if isinstance(config, dict) else None
        if not target:
            return None
        target = Path(target) if Path(target).is_absolute() else part.parent.parent / target
    target = Path(target)
    if not target.is_dir():
        target = part.parent / target.name  # a results folder copied elsewhere: look beside it
    return target if target.is_dir() else None


def parts_of(head: Path) -> list[Path]:
    """The parts of the run whose newest part is `head`, oldest first."""
    parts = [Path(head)]
    while len(parts) < 10_000:
        parent = _origin(parts[-1])
        if parent is None or parent in parts:
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

    state: CellState
    head: Path | None = None  # the newest run directory
    step: int | None = None  # running: the newest logged step; otherwise the newest training state's
    steps_per_second: float | None = None  # running: the newest logged rate
    eval_return: float | None = None  # the newest evaluation's mean return
    config: dict | None = None  # the head's config.json
    resume_from: Path | None = None  # the part `resume=` should name (it has, or links to, the state)


LAUNCH_FILE = "launched.json"  # written by sac.grid beside runs/: the pid it started, before Sacred runs


def _launched_alive(cell: Path) -> bool:
    """The process sac.grid started for `cell` is alive (and, where /proc shows it, works in `cell`:
    a reused pid is not taken for it)."""
    launched = read_json(Path(cell) / LAUNCH_FILE)
    if not (isinstance(launched, dict) and launched.get("host") == socket.gethostname()
            and process_alive(launched.get("pid"))):
        return False
    try:
        return Path(os.readlink(f"/proc/{int(launched['pid'])}/cwd")) == Path(cell).resolve()
    except OSError:
        return not Path("/proc/self").is_dir()


def inspect(cell: Path, target_steps: int, read_metrics: bool = True) -> CellStatus:
    """Where the run in `cell` stands against `target_steps` (the total it should reach). Without
    `read_metrics` the metrics files are not read (no rate, no eval return): what scheduling needs."""
    parts = chain(cell)
    alive = _launched_alive(cell) or (bool(parts) and still_running(parts[-1]) is not None)
    if not parts:
        return CellStatus("running" if alive else "missing")
    head = parts[-1]
    config = read_json(head / "config.json")
    own_state_steps = {part: newest_state_step([part]) for part in parts}
    state_step = max((s for s in own_state_steps.values() if s is not None), default=None)
    # resume= names the newest part that holds a state or links back to one (a part that died
    # while starting holds neither); sac.resume follows the links from there.
    resume_from = None
    if state_step is not None:
        resume_from = next(p for p in reversed(parts) if own_state_steps[p] is not None
                           or isinstance(read_json(p / "resume.json"), dict))
    rate, eval_return, logged_step = None, None, None
    if read_metrics:
        curves = metric_curves(parts, ["eval/return_mean", "train/steps_per_second"])
        evals, rates = curves["eval/return_mean"], curves["train/steps_per_second"]
        eval_return = evals.values[-1] if evals.values else None
        # The newest rate logged by the process now running (not one from before its resume).
        since = (read_json(head / "resume.json") or {}).get("step", 0) if len(parts) > 1 else 0
        if rates.steps and rates.steps[-1] > since:
            rate, logged_step = rates.values[-1], rates.steps[-1]
    if alive:
        step = max([s for s in (state_step, logged_step) if s is not None], default=None)
        return CellStatus("running", head, step, rate, eval_return, config, resume_from)
    if state_step is not None and state_step >= target_steps:
        return CellStatus("done", head, state_step, None, eval_return, config, resume_from)
    status = (read_json(head / "run.json") or {}).get("status")
    return CellStatus("failed" if status == "FAILED" else "stopped", head, state_step, None, eval_return, config,
                      resume_from)
