"""Faults during training: an env that raises or returns NaN, updates that blow up, a full disk.
Each stops the run with one clear line naming the step, and leaves the last training state intact."""
from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint

from .conftest import cli_env, run_cli
from .test_bad_input import _assert_one_line_error

pytestmark = pytest.mark.smoke

SMALL = ["hidden_sizes=[32,32]", "batch_size=32", "eval_episodes=1", "log_every=100"]


def _only_run(cwd: Path) -> Path:
    (run,) = [p for p in (cwd / "runs").iterdir() if p.name.isdigit()]
    return run


def _assert_state_intact(run: Path, step: int) -> None:
    path, payload = checkpoint.load_newest_state(run / "checkpoints")
    assert path.name == f"state-{step}.pkl" and payload["step"] == step
    for group, arrays in payload["agent"].items():
        for array in arrays:
            assert np.isfinite(array).all(), group
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary left


def test_an_env_that_raises_is_reported_with_the_step_and_env_id(workdir: Path):
    env_id = "tests.custom_envs:CrashesAtStep700-v0"
    result = run_cli(["-m", "sac.train", "with", f"env_id={env_id}", "total_steps=2000", "learning_starts=1000",
                      "checkpoint_every=500", "eval_every=100000", *SMALL], workdir)
    _assert_one_line_error(result, f"env {env_id} failed during step at step 700:", "RuntimeError: simulator diverged",
                           "state-500.pkl", "is intact", "resume=runs/1")
    _assert_state_intact(_only_run(workdir), 500)


def test_a_non_finite_reward_from_the_env_stops_the_run_before_it_is_stored(workdir: Path):
    result = run_cli(["-m", "sac.train", "with", "env_id=tests.custom_envs:NaNRewardAtStep50-v0", "total_steps=200",
                      "learning_starts=100", *SMALL], workdir)
    _assert_one_line_error(result, "failed during step at step 50:", "non-finite reward",
                           "no training state had been saved yet")


def test_exploding_updates_stop_the_run_and_no_nan_checkpoint_is_written(workdir: Path):
    # A learning rate of 1e30 overflows the critics within a few updates.
    result = run_cli(["-m", "sac.train", "with", "critic_lr=1e30", "total_steps=1400", "learning_starts=1000",
                      "checkpoint_every=1000", "eval_every=100000", *SMALL], workdir)
    _assert_one_line_error(result, "non-finite loss/", "state-1000.pkl", "is intact")
    (step,) = [int(m) for m in re.findall(r"non-finite [^;]* at step (\d+);", result.stderr)]
    assert 1000 < step <= 1400  # after the first update (step 1001), before the run would have ended
    run = _only_run(workdir)
    _assert_state_intact(run, 1000)
    assert [p.name for p in checkpoint.list_checkpoints(run / "checkpoints")] == ["model-1000.pkl"]


def test_a_full_disk_while_saving_stops_the_run_clearly_and_leaves_no_partial_file(workdir: Path):
    # RLIMIT_FSIZE makes every write past 500 kB fail (EFBIG, as ENOSPC does on a full disk): the
    # policy file (0.2 MB) fits, the training state (weights, targets, Adam moments: 0.76 MB) does not.
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    (workdir / "runs").mkdir()
    result = subprocess.run([sys.executable, "-m", "sac.train", "with", "total_steps=400", "learning_starts=300",
                             "checkpoint_every=200", "eval_every=100000", "hidden_sizes=[128,128]", "batch_size=32",
                             "eval_episodes=1", "log_every=100"],
                            cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=600,
                            preexec_fn=limit_file_size)
    _assert_one_line_error(result, "could not write the checkpoint of step 200", "File too large",
                           "no earlier training state exists", "the run stopped")
    run = _only_run(workdir)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["model-200.pkl"], names  # the state was never half-written under its name
