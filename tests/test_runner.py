"""tests.py, the runner: two pytest-xdist workers unless the user chose otherwise, and a refused suite name."""
from __future__ import annotations

import importlib.util

import pytest

from .conftest import REPO


def _runner():
    spec = importlib.util.spec_from_file_location("sac_tests_runner", REPO / "tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_two_workers_unless_the_user_chose(monkeypatch):
    runner = _runner()
    monkeypatch.delenv("SAC_TEST_WORKERS", raising=False)
    assert runner.worker_args([]) == ["-n", "2", "--dist", "worksteal"]
    assert runner.worker_args(["-k", "replay", "-x"]) == ["-n", "2", "--dist", "worksteal"]
    for chosen in (["-n", "4"], ["-n4"], ["--numprocesses=3"], ["-p", "no:xdist"], ["-pno:xdist"], ["--pdb"],
                   ["--collect-only", "-q"], ["--co"], ["-s"], ["-xs"], ["--capture=no"]):
        assert runner.worker_args(chosen) == [], chosen
    # Options that merely start like those leave the two workers in place.
    for other in (["--color=yes"], ["--trace-config"], ["--continue-on-collection-errors"], ["-x"], ["-vv"],
                  ["-k", "not slow"], ["--lf"]):
        assert runner.worker_args(other) == ["-n", "2", "--dist", "worksteal"], other
    monkeypatch.setenv("SAC_TEST_WORKERS", "0")
    assert runner.worker_args([]) == []
    monkeypatch.setenv("SAC_TEST_WORKERS", "3")
    assert runner.worker_args([]) == ["-n", "3", "--dist", "worksteal"]
    real_find_spec = runner.importlib.util.find_spec
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: None if name == "xdist" else real_find_spec(name))
    assert runner.worker_args([]) == []  # without pytest-xdist: one process
    monkeypatch.undo()
    monkeypatch.setenv("SAC_TEST_WORKERS", "²")  # a digit to str.isdigit, not to int()
    with pytest.raises(SystemExit, match="not '²'$"):
        runner.worker_args([])
    monkeypatch.setenv("SAC_TEST_WORKERS", "two")
    with pytest.raises(SystemExit, match="^SAC_TEST_WORKERS must be a whole number of worker processes "
                                         r"\(0: one process\), not 'two'$"):
        runner.worker_args([])


@pytest.mark.unit
def test_an_unknown_suite_is_refused_in_one_line(capsys):
    assert _runner().main(["Fast"]) == 2
    assert capsys.readouterr().err == "unknown suite 'Fast'; choose from Unit, Smoke, Learning (or nothing for all)\n"
