"""Where metrics go: Sacred's metrics.json, TensorBoard event files, and a progress line.

Every scalar is indexed by the environment step. Sacred's captured cout.txt can miss lines
(IDSIA/sacred#224), so everything that matters is a metric, not only a printed line.

Resume. Sacred writes metrics.json on its heartbeat and TensorBoard flushes on its own schedule, so
after a crash a run directory can hold metrics from after its newest checkpoint, or miss some from
before it. The logger keeps every scalar it logged (`record()`), the training state stores that
record, and `rewrite_run_metrics` makes a stopped run's metrics.json and event files say exactly
what the record says before the resumed run logs the steps after it: each step appears once.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Protocol, TextIO

# (step, value, wall-clock time) of one logged scalar
Entry = tuple[int, float, float]


class ScalarSink(Protocol):
    """Sacred's Run, or anything with the same log_scalar (and optionally an `info` dict)."""

    def log_scalar(self, name: str, value: float, step: int) -> None: ...


class MetricsLogger:
    def __init__(self, run: ScalarSink | None, tensorboard_dir: Path | None, total_steps: int,
                 stream: TextIO = sys.stdout) -> None:
        self._run = run
        self._total_steps = total_steps
        self._stream = stream
        self._writer = None
        if tensorboard_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(tensorboard_dir))
        self.history: dict[str, list[Entry]] = {}
        self._last: dict[str, float] = {}  # latest values, including those of the run this one resumes
        self._start = time.perf_counter()

    def scalar(self, name: str, value: Any, step: int) -> None:
        value = float(value)
        self.history.setdefault(name, []).append((step, value, time.time()))
        self._last[name] = value
        if self._run is not None:
            self._run.log_scalar(name, value, step)
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default(step=step):
                tf.summary.scalar(name, value)

    def scalars(self, values: dict[str, Any], step: int) -> None:
        for name, value in values.items():
            self.scalar(name, value, step)

    def note(self, key: str, value: Any) -> None:
        """A one-off fact about the run (Sacred's info.json), e.g. when the first update finished."""
        info = getattr(self._run, "info", None)
        if info is not None:
            info[key] = value

    def last(self, name: str) -> float | None:
        return self._last.get(name)

    def record(self) -> dict[str, Any]:
        """What this logger wrote (for the training state): every entry, and the latest values."""
        return {"history": {name: [list(e) for e in entries] for name, entries in self.history.items()},
                "last": dict(self._last)}

    def resume_from(self, record: dict[str, Any]) -> None:
        """Continue the progress line where the stopped run left it (its latest returns)."""
        self._last.update(record.get("last", {}))

    def progress(self, step: int, steps_per_second: float) -> None:
        """One line: step, speed, the latest returns, time left."""
        remaining = (self._total_steps - step) / steps_per_second if steps_per_second > 0 else math.inf
        eta = str(datetime.timedelta(seconds=int(remaining))) if math.isfinite(remaining) else "?"
        parts = [f"step {step}/{self._total_steps} ({100.0 * step / self._total_steps:.0f}%)",
                 f"{steps_per_second:.0f} steps/s"]
        train_return = self.last("train/episode_return")
        if train_return is not None:
            parts.append(f"train return {train_return:.1f}")
        eval_return = self.last("eval/return_mean")
        if eval_return is not None:
            parts.append(f"eval return {eval_return:.1f}")
        parts.append(f"elapsed {datetime.timedelta(seconds=int(time.perf_counter() - self._start))}")
        parts.append(f"ETA {eta}")
        print(" | ".join(parts), file=self._stream, flush=True)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# --- Making a stopped run's files agree with its training state ---------------------------------------

def _utc_iso(wall_time: float) -> str:
    return datetime.datetime.fromtimestamp(wall_time, datetime.timezone.utc).replace(tzinfo=None).isoformat()


def rewrite_run_metrics(run_dir: Path, history: dict[str, list[Entry]]) -> None:
    """Replace run_dir's metrics.json and TensorBoard event files by exactly `history`.

    Idempotent, and safe to interrupt: metrics.json is replaced atomically; the new event file is
    written under a name TensorBoard ignores, the old event files are deleted, then it is renamed."""
    from sac.checkpoint import write_atomically

    run_dir = Path(run_dir)
    sacred_metrics = {name: {"steps": [int(e[0]) for e in entries], "values": [float(e[1]) for e in entries],
                             "timestamps": [_utc_iso(e[2]) for e in entries]} for name, entries in history.items()}
    write_atomically(run_dir / "metrics.json", json.dumps(sacred_metrics, indent=2).encode())

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter

    events = sorted((e[2], e[0], name, e[1]) for name, entries in history.items() for e in entries)
    first_time = events[0][0] if events else time.time()
    name = f"events.out.tfevents.{int(first_time)}.{socket.gethostname()}.{os.getpid()}.0.rewritten"
    tmp = run_dir / f".metrics-rewrite-{os.getpid()}.tmp"  # no "tfevents" in it: TensorBoard skips it
    with open(tmp, "wb") as f:
        writer = RecordWriter(f)
        writer.write(Event(wall_time=first_time, file_version="brain.Event:2").SerializeToString())
        for wall_time, step, tag, value in events:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.write(Event(wall_time=wall_time, step=step, summary=summary).SerializeToString())
        f.flush()
        os.fsync(f.fileno())
    for old in run_dir.glob("events.out.tfevents.*"):
        old.unlink()
    for stale in run_dir.glob(".metrics-rewrite-*.tmp"):
        if stale != tmp:
            stale.unlink()
    os.replace(tmp, run_dir / name)
