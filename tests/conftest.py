"""Shared helpers: run the command-line tools in a scratch directory, read what a run wrote."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """Run `python <args>` the way a user would, from `cwd` (`env`: extra environment variables)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def train(cwd: Path, *updates: str, timeout: float = 600, env: dict[str, str] | None = None) -> Path:
    """`python -m sac.train with <updates>` in cwd; returns the run directory (it must succeed)."""
    before = set((cwd / "runs").glob("*")) if (cwd / "runs").exists() else set()
    result = run_cli(["-m", "sac.train", "with", *updates], cwd, timeout=timeout, env=env)
    assert result.returncode == 0, f"training failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    new = [p for p in (cwd / "runs").glob("*") if p.is_dir() and p not in before and p.name.isdigit()]
    assert len(new) == 1, new
    return new[0]


def read_metrics(run_dir: Path) -> dict[str, dict[str, list]]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


class _RunsAShellCommand:
    """Unpickling this with the standard unpickler would run `touch marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_pickle(marker: Path) -> bytes:
    """A hand-crafted 'checkpoint' that would create `marker` if it were ever unpickled normally."""
    return pickle.dumps({"format": "sac-policy", "x": _RunsAShellCommand(marker)})
