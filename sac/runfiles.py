"""The small JSON files of a run directory (config.json, resume.json, process.json, ...): reading
them, and which process trains in a run. Plain files only: resume, the run-directory readers
(sac/rundirs.py), the grid and the report use them without TensorFlow or Sacred.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from sac import checkpoint


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def record_process(run_dir: Path) -> None:
    """Note which process trains in run_dir, so that resume can refuse a run that is still alive."""
    checkpoint.write_atomically(Path(run_dir) / "process.json", json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname()}).encode())


def process_alive(pid: Any, name: bytes = b"sac.train") -> bool:
    """Whether process `pid` on this machine is alive (and, where /proc shows command lines, runs
    `name`, so that a reused pid is not taken for it)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if Path("/proc/self").is_dir():
        try:
            return name in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:  # macOS and others without /proc: the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def still_running(run_dir: Path) -> int | None:
    """The pid of the sac.train process still training in run_dir on this machine, if any."""
    process = read_json(Path(run_dir) / "process.json")
    if not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return None
    return int(process["pid"]) if process_alive(process.get("pid")) else None
