"""The test runner: `python tests.py` runs everything, `python tests.py Unit|Smoke|Learning` one suite.

Extra arguments go to pytest (e.g. `python tests.py Unit -k replay -x`). Plain `pytest` collects the
same tests/ directory.
"""
from __future__ import annotations

import os
import sys

import pytest

SUITES = {"Unit": "unit", "Smoke": "smoke", "Learning": "learning"}


def main(argv: list[str]) -> int:
    args = ["tests", "-ra"]
    if argv and argv[0] in SUITES:
        args += ["-m", SUITES[argv[0]]]
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        print(f"unknown suite {argv[0]!r}; choose from {', '.join(SUITES)} (or nothing for all)", file=sys.stderr)
        return 2
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    return pytest.main(args + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
