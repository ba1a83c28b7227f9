"""The test runner: `python tests.py` runs everything, `python tests.py Unit|Smoke|Learning` one suite.

Extra arguments go to pytest (e.g. `python tests.py Unit -k replay -x`). Plain `pytest` collects the
same tests/ directory, in one process.

The runner spreads the tests over two pytest-xdist worker processes (`SAC_TEST_WORKERS=N` for
another number, 0 for one process): most of the suite's time is spent in short training runs whose
small networks keep a core busy only part of the time (Python, the env, compiling), so two at once
finish sooner than one after the other on the 2-core CI machine (docs/testing.md has the figures).
Nothing in the suite depends on timing or on having the machine to itself. It also prints the 20 slowest tests, so a
suite that grows can be trimmed where it costs.
"""
from __future__ import annotations

import os
import sys

import pytest

SUITES = {"Unit": "unit", "Smoke": "smoke", "Learning": "learning"}
DEFAULT_WORKERS = 2


def worker_args(argv: list[str]) -> list[str]:
    """pytest-xdist's arguments for the runner's worker count; none when the user chose the workers
    (-n, -p), asked for one process (SAC_TEST_WORKERS=0 or 1), or for what needs one (the debugger,
    listing the tests)."""
    one_process = ("-n", "--numprocesses", "-p", "--pdb", "--trace", "--collect-only", "--co")
    if any(a.startswith(one_process) for a in argv):
        return []
    text = os.environ.get("SAC_TEST_WORKERS") or str(DEFAULT_WORKERS)
    if not text.isdigit():
        raise SystemExit(f"SAC_TEST_WORKERS must be a whole number of worker processes (0: one process), not {text!r}")
    workers = int(text)
    if workers <= 1:
        return []
    # worksteal: an idle worker takes tests queued on the other, so the long learning runs do not
    # leave one worker waiting at the end.
    return ["-n", str(workers), "--dist", "worksteal"]


def main(argv: list[str]) -> int:
    args = ["tests", "-ra", "--durations=20"]
    if argv and argv[0] in SUITES:
        args += ["-m", SUITES[argv[0]]]
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        print(f"unknown suite {argv[0]!r}; choose from {', '.join(SUITES)} (or nothing for all)", file=sys.stderr)
        return 2
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    # Two test processes on one GPU: each takes the memory it needs, not the whole device.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return pytest.main(args + worker_args(argv) + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
