"""Where metrics go: Sacred's metrics.json, TensorBoard event files, and a progress line.

Every scalar is indexed by the environment step. Sacred's captured cout.txt can miss lines
(IDSIA/sacred#224), so everything that matters is a metric, not only a printed line.
"""
from __future__ import annotations

import datetime
import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol, TextIO


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
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._start = time.perf_counter()

    def scalar(self, name: str, value: Any, step: int) -> None:
        value = float(value)
        self.history.setdefault(name, []).append((step, value))
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
        entries = self.history.get(name)
        return entries[-1][1] if entries else None

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
