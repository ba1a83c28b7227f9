"""The test runner: `python tests.py` runs everything, `python tests.py Unit|Smoke|Learning` one suite.

Extra arguments go to pytest (e.g. `python tests.py Unit -k replay -x`). Plain `pytest` collects the
same tests/ directory, in one process.

The runner spreads the tests over two pytest-xdist worker processes (`SAC_TEST_WORKERS=N` for
another number, 0 for one process): most of the suite's time is spent in short training runs whose
small networks keep a core busy only part of the time (Python, the env, compiling), so two at once
finish sooner than one after the other on the 2-core CI machine (docs/testing.md has the figures).
No test waits for a timing window (stops land at chosen steps; waits have generous bounds). The
runner also prints the 20 slowest tests, so a suite that grows can be trimmed where it costs.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys

import pytest

SUITES = {"Unit": "unit", "Smoke": "smoke", "Learning": "learning"}
DEFAULT_WORKERS = 2


# Options after which the runner adds no workers: the user chose them (-n, a plugin with -p), or
# asked for what needs one process (the debugger, the tests' own output with -s, a listing).
_ONE_PROCESS_OPTIONS = {"-n", "--numprocesses", "-p", "--pdb", "--trace", "--collect-only", "--co", "-s", "--capture"}
_ATTACHED = re.compile(r"-n(\d+|auto|logical)|-p\S+|-[xvql]*s[xvql]*")  # -n2, -pno:xdist, -s among short flags


def _leaves_it_to_pytest(arg: str) -> bool:
    return arg.split("=", 1)[0] in _ONE_PROCESS_OPTIONS or _ATTACHED.fullmatch(arg) is not None


def worker_args(argv: list[str]) -> list[str]:
    """pytest-xdist's arguments for the runner's worker count; none when an option in argv leaves the
    choice to pytest (_ONE_PROCESS_OPTIONS), when SAC_TEST_WORKERS asks for one process (0 or 1), or
    when pytest-xdist is not installed (a hand-made environment: one process, with a note)."""
    if any(_leaves_it_to_pytest(arg) for arg in argv):
        return []
    text = os.environ.get("SAC_TEST_WORKERS") or str(DEFAULT_WORKERS)
    if not re.fullmatch(r"[0-9]+", text):
        raise SystemExit(f"SAC_TEST_WORKERS must be a whole number of worker processes (0: one process), not {text!r}")
    workers = int(text)
    if workers <= 1:
        return []
    if importlib.util.find_spec("xdist") is None:
        print("tests.py: pytest-xdist is not installed (pipenv sync --dev installs it); running in one process",
              file=sys.stderr)
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
