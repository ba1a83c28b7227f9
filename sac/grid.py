"""`python -m sac.grid RESULTS --configs half_cheetah,hopper --seeds 0,1,2 [key=value ...]`: a grid of runs.

Each named config x seed is a *cell*, RESULTS/<config>/seed<seed>/, in which `python -m sac.train`
runs with that folder as its working directory (so its run directories are
RESULTS/<config>/seed<seed>/runs/<id>/ and its output goes to RESULTS/<config>/seed<seed>/log.txt).
`--parallel N` runs at a time, each with cores/N TensorFlow threads (num_threads), unless the
command line sets num_threads itself.

The grid is its folder: run the same command again at any time (after a stop, a crash, a reboot,
on a new machine with the folder copied over) and it looks at every cell (sac/rundirs.py):
  done     a training state at total_steps: skipped
  running  a live sac.train process trains it (this grid's or another's): left alone, counted
  stopped  resumed with `resume=` from its newest training state (issue 4), or started afresh when
           it never saved one
  failed   its newest part ended with an error: tried again once per grid command
  missing  started
A larger total_steps on a later command extends finished runs (resume= with the new total).
Ctrl-C or SIGTERM stops the grid: each of its runs gets one SIGTERM, finishes its step, saves its
training state and exits; run the command again to continue (a second Ctrl-C passes a SIGINT on,
which stops the runs at once: they go on later from their newest checkpoint). A grid killed outright (kill -9)
leaves its runs training: they run in sessions of their own, and the next grid command sees them
as running and does not start them twice.

`--status` prints where every cell stands (step, steps/s, ETA, newest eval return) and starts
nothing; the running grid prints the same table every --report-every seconds.

`--recorded FOLDER` names a folder of curves that `python -m sac.report` wrote (<task>/seed<N>.csv,
committed, say, from a machine that is gone): a cell whose task (sac.report's label: the env id and
its env_kwargs) and seed has a curve there reaching total_steps is recorded, and neither run nor
counted. It trusts the folder to hold runs of the same config: sac.report's CSVs carry no config.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import socket
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sac import checkpoint, report, rundirs
from sac import config as config_module
from sac.changeable import CHANGEABLE, changed_entries
from sac.errors import UserError
from sac.kinds import CELL_STATES
from sac.runfiles import read_json

# The package's root: the training processes import this same code (AutoGraph reads the source).
_CODE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cell:
    config_name: str
    seed: int
    directory: Path
    config: dict = field(hash=False, compare=False)  # the whole config this cell trains with (named config, overrides, seed)

    @property
    def label(self) -> str:
        return f"{self.config_name} seed {self.seed}"


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` as Sacred reads it: a Python literal, else the text as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"expected key=value, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def full_config(config_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The config `python -m sac.train with <config_name> <overrides>` would run with, checked."""
    from sacred.config import ConfigScope

    if config_name not in config_module.NAMED_CONFIGS:
        raise UserError(f"unknown named config {config_name!r}; known: {', '.join(config_module.NAMED_CONFIGS)}")
    named = dict(ConfigScope(config_module.NAMED_CONFIGS[config_name])())
    return config_module.run_config(**{**named, **overrides}).to_dict()


def make_cells(results: Path, config_names: list[str], seeds: list[int], overrides: dict[str, Any]) -> list[Cell]:
    if "seed" in overrides or "resume" in overrides:
        raise UserError("the grid sets seed (--seeds) and resume itself; drop them from the overrides")
    cells = []
    for name in dict.fromkeys(config_names):  # each once, in the order given
        for seed in dict.fromkeys(seeds):
            cells.append(Cell(name, seed, results / name / f"seed{seed}", full_config(name, {**overrides, "seed": seed})))
    return cells


def check_existing(cells: list[Cell]) -> None:
    """Refuse (before starting anything) a cell whose run was trained with another config: the
    grid would mix two experiments in one folder."""
    for cell in cells:
        parts = rundirs.chain(cell.directory)
        if not parts:
            continue
        old = read_json(parts[0] / "config.json")
        if not isinstance(old, dict):
            continue
        changed = changed_entries(old, cell.config, lacking="skipped")
        if changed:
            key = changed[0]
            raise UserError(f"{cell.directory} holds a run with {key}={old[key]!r}, but this grid asks for "
                            f"{key}={cell.config[key]!r}; use another results folder for another experiment (only "
                            f"{', '.join(CHANGEABLE)} may change)")


def recorded_curves(folders: list[Path]) -> dict[tuple[str, int], report.SeedCurve]:
    """(task label, seed) -> the furthest curve of it in sac.report CSV folders."""
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"--recorded: no such folder: {folder}")
    return report.furthest_per_seed([curve for folder in folders for curve in report.csv_curves(folder)])


def split_recorded(cells: list[Cell], recorded: dict[tuple[str, int], report.SeedCurve]
                   ) -> tuple[list[Cell], list[tuple[Cell, Path]]]:
    """The cells still to run, and those whose curve in `recorded` reaches their total_steps (with its CSV)."""
    left, done = [], []
    for cell in cells:
        curve = recorded.get((report.file_name(report.task_label(cell.config)), cell.seed))
        if curve is not None and len(curve.steps) and curve.steps[-1] >= cell.config["total_steps"]:
            done.append((cell, Path(curve.source)))
        else:
            left.append(cell)
    return left, done


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def status_table(cells: list[Cell], parallel: int) -> str:
    """Where each cell stands, and the time the rest takes at the measured rates."""
    rows = [("run", "state", "step", "steps/s", "ETA", "eval return", "directory")]
    counts: dict[str, int] = {}
    remaining, rates, unfinished, longest = 0, [], 0, 0.0
    for cell in cells:
        total = cell.config["total_steps"]
        st = rundirs.inspect(cell.directory, total)
        counts[st.state] = counts.get(st.state, 0) + 1
        step = st.step or 0
        if st.state != "done":
            remaining += max(total - step, 0)
            unfinished += 1
        eta = None
        if st.state == "running" and st.steps_per_second:
            rates.append(st.steps_per_second)
            eta = (total - step) / st.steps_per_second
            longest = max(longest, eta)
        rows.append((cell.label, st.state, f"{step}/{total}" if st.step is not None else f"-/{total}",
                     f"{st.steps_per_second:.0f}" if st.steps_per_second else "-", _duration(eta),
                     f"{st.eval_return:.1f}" if st.eval_return is not None else "-",
                     str(st.head if st.head is not None else cell.directory)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    summary = ", ".join(f"{counts[s]} {s}" for s in CELL_STATES if s in counts)
    if rates and remaining:
        rate = sum(rates) / len(rates)
        # Fewer runs left than slots run fewer at a time, and no grid ends before its slowest run.
        at_a_time = min(parallel, unfinished)
        eta = max(remaining / (rate * at_a_time), longest)
        summary += (f"; {remaining} steps to go, about {_duration(eta)} at "
                    f"{at_a_time} at a time and {rate:.0f} steps/s each")
    return "\n".join(lines + [f"grid: {summary}"])


def _num_threads(parallel: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // parallel)


class Grid:
    """Starts, resumes and watches the cells' sac.train processes."""

    def __init__(self, cells: list[Cell], override_texts: list[str], parallel: int, report_every: float,
                 stream: TextIO = sys.stdout, poll_seconds: float = 2.0) -> None:
        self.cells, self.parallel, self.report_every = cells, parallel, report_every
        self.override_texts = [t for t in override_texts if not t.startswith("num_threads=")]
        given = [t for t in override_texts if t.startswith("num_threads=")]
        self.num_threads_text = given[-1] if given else f"num_threads={_num_threads(parallel)}"
        self.stream, self.poll_seconds = stream, poll_seconds
        self.children: dict[Cell, subprocess.Popen] = {}
        self.tried: set[Cell] = set()
        self.signals: list[int] = []
        self.forwarded: dict[Cell, int] = {}

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def command(self, cell: Cell, status: rundirs.CellStatus) -> list[str]:
        python = [sys.executable, "-m", "sac.train", "with"]
        if status.resume_from is not None:  # go on from its newest training state
            resume = status.resume_from.relative_to(cell.directory)
            # A resume keeps the run's config; only the entries a resume may change pass on.
            changes = [t for t in self.override_texts if t.partition("=")[0].strip() in CHANGEABLE
                       and t.partition("=")[0].strip() != "total_steps"]
            return python + [f"resume={resume}", f"total_steps={cell.config['total_steps']}", *changes,
                             self.num_threads_text]
        return python + [cell.config_name, f"seed={cell.seed}", *self.override_texts, self.num_threads_text]

    def start(self, cell: Cell, status: rundirs.CellStatus) -> None:
        cell.directory.mkdir(parents=True, exist_ok=True)
        argv = self.command(cell, status)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_CODE_ROOT), env.get("PYTHONPATH")]))
        with open(cell.directory / "log.txt", "ab") as log:
            log.write(f"\n$ {' '.join(argv[1:])}\n".encode())
            log.flush()
            # A session of its own: a Ctrl-C in the grid's terminal reaches the grid only, which then
            # stops each run with one SIGTERM (a second Ctrl-C would stop a run before it saves).
            child = subprocess.Popen(argv, cwd=cell.directory, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.children[cell] = child
        # Seen as running from now on (sac.train writes its own process.json only once it has started).
        checkpoint.write_atomically(cell.directory / rundirs.LAUNCH_FILE, json.dumps(
            {"pid": child.pid, "host": socket.gethostname()}).encode())
        how = "resuming" if any(a.startswith("resume=") for a in argv) else "starting"
        where = f" from step {status.step}" if how == "resuming" else ""
        self.say(f"{how} {cell.label}{where} (pid {child.pid}; log {cell.directory / 'log.txt'})")

    def reap(self) -> None:
        for cell, child in list(self.children.items()):
            code = child.poll()
            if code is None:
                continue
            del self.children[cell]
            st = rundirs.inspect(cell.directory, cell.config["total_steps"])
            if st.state == "done":
                ret = f"; eval return {st.eval_return:.1f}" if st.eval_return is not None else ""
                self.say(f"done: {cell.label} at step {st.step}{ret}")
            elif code in (128 + signal.SIGTERM, 128 + signal.SIGINT):  # sac.train saved its state and said so
                self.say(f"stopped: {cell.label}; newest training state at step {st.step}")
            elif self.signals:
                self.say(f"stopped: {cell.label} (exit status {code}; newest training state at step {st.step})")
            else:
                self.say(f"FAILED: {cell.label} (exit status {code}): {_last_line(cell.directory / 'log.txt')}")

    def on_signal(self, signum: int, frame: Any) -> None:
        # Only noted here: the loop passes it on (a handler that took locks or started processes
        # could interrupt the loop in the middle of the same).
        self.signals.append(signum)

    def forward_signals(self) -> None:
        """Each run gets one signal per signal the grid got, at most two: a SIGTERM first, which
        lets it save and stop, then a SIGINT (a second Ctrl-C), which stops it at once, as in sac.train.
        (A scheduler's SIGTERM to the whole job reaches a run twice, directly and from here: sac.train
        ignores a repeated SIGTERM.)"""
        for cell, child in self.children.items():
            due = min(len(self.signals), 2)
            while self.forwarded.get(cell, 0) < due and child.poll() is None:
                try:
                    child.send_signal(signal.SIGINT if self.forwarded.get(cell, 0) else signal.SIGTERM)
                except ProcessLookupError:
                    break
                self.forwarded[cell] = self.forwarded.get(cell, 0) + 1

    def run(self) -> int:
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _loop(self) -> int:
        self.say(f"grid of {len(self.cells)} runs, {self.parallel} at a time ({self.num_threads_text})")
        last_report = time.monotonic()
        print(status_table(self.cells, self.parallel), file=self.stream, flush=True)
        while True:
            self.forward_signals()
            self.reap()
            if self.signals:
                if not self.children:
                    self.say("grid stopped: every run it started saved its training state; run the same command "
                             "again to continue")
                    return 128 + self.signals[0]
            else:
                statuses = {cell: rundirs.inspect(cell.directory, cell.config["total_steps"], read_metrics=False)
                            for cell in self.cells}
                elsewhere = sum(1 for c, s in statuses.items() if s.state == "running" and c not in self.children)
                waiting = [c for c, s in statuses.items()
                           if s.state in ("missing", "stopped", "failed") and c not in self.tried]
                while waiting and len(self.children) + elsewhere < self.parallel and not self.signals:
                    cell = waiting.pop(0)
                    self.tried.add(cell)
                    self.start(cell, statuses[cell])
                if not self.children and not elsewhere and not waiting:
                    print(status_table(self.cells, self.parallel), file=self.stream, flush=True)
                    left = [c for c, s in statuses.items() if s.state != "done"]
                    if left:
                        self.say(f"grid finished with {len(left)} run(s) not done: "
                                 f"{', '.join(c.label for c in left)}; their logs say why (run the command again "
                                 "to retry them)")
                        return 1
                    self.say("grid complete: every run is done")
                    return 0
                if time.monotonic() - last_report >= self.report_every:
                    last_report = time.monotonic()
                    print(status_table(self.cells, self.parallel), file=self.stream, flush=True)
            time.sleep(self.poll_seconds)  # a signal ends it early; the loop passes the signal on


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one named config")
    return names


def discover(results: Path) -> list[tuple[str, int]]:
    """The (named config, seed) cells that exist in `results` (for --status without --configs)."""
    found = []
    for config_dir in sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []:
        if config_dir.name not in config_module.NAMED_CONFIGS:
            continue
        seeds = sorted(int(p.name[4:]) for p in config_dir.iterdir()
                       if p.is_dir() and p.name.startswith("seed") and p.name[4:].isdigit())
        found += [(config_dir.name, seed) for seed in seeds]
    return found


def _own_total(cell: Cell) -> Cell:
    parts = rundirs.chain(cell.directory)
    own = read_json(parts[-1] / "config.json") if parts else None
    if isinstance(own, dict) and isinstance(own.get("total_steps"), int):
        return Cell(cell.config_name, cell.seed, cell.directory, {**cell.config, "total_steps": own["total_steps"]})
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sac.grid", description="Train named configs x seeds into one results folder, N at a time; "
        "run again to resume (finished runs are skipped, stopped ones resumed, missing ones started).")
    parser.add_argument("results", type=Path, help="the results folder (created if missing)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config entries for every run, as after `sac.train with` (total_steps=300000)")
    parser.add_argument("--configs", type=_name_list, help="named configs, comma-separated (half_cheetah,hopper)")
    parser.add_argument("--seeds", type=_int_list, default=[0], help="seeds, comma-separated (default: 0)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--report-every", type=float, default=600.0, metavar="SECONDS",
                        help="print the status table this often while running (default 600)")
    parser.add_argument("--status", action="store_true", help="print where every run stands and exit")
    parser.add_argument("--recorded", type=Path, action="append", default=[], metavar="FOLDER",
                        help="a folder of sac.report CSVs (<task>/seed<N>.csv) of runs finished elsewhere: cells "
                        "whose curve there reaches total_steps are skipped (repeatable)")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.parallel < 1:
            raise UserError(f"--parallel must be at least 1, got {args.parallel}")
        overrides = dict(parse_override(text) for text in args.overrides)
        if args.configs is None:
            if not args.status:
                raise UserError("name the configs to train: --configs half_cheetah,hopper")
            found = discover(args.results)
            if not found:
                raise UserError(f"{args.results} holds no grid cells (<config>/seed<N>/)")
            cells = [cell for name, seed in found for cell in make_cells(args.results, [name], [seed], overrides)]
        else:
            cells = make_cells(args.results, args.configs, args.seeds, overrides)
        if args.status and "total_steps" not in overrides:  # each run's own total, not its named config's
            cells = [_own_total(cell) for cell in cells]
        cells, recorded = split_recorded(cells, recorded_curves(args.recorded))
        for cell, path in recorded:
            print(f"recorded: {cell.label} (its curve to step {cell.config['total_steps']} or beyond is {path})")
        if args.status:
            print(status_table(cells, args.parallel))
            return 0
        check_existing(cells)
        args.results.mkdir(parents=True, exist_ok=True)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return Grid(cells, args.overrides, args.parallel, args.report_every).run()


if __name__ == "__main__":
    sys.exit(main())
