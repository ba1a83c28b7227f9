"""Bad input fails fast with one clear line, no traceback, a non-zero exit and no run directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import read_metrics, run_cli, train

pytestmark = pytest.mark.smoke


def _assert_one_line_error(result, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], output


@pytest.mark.parametrize("updates, fragments", [
    (["env_id=Pendulm-v1"], ["unknown env id 'Pendulm-v1'", "did you mean 'Pendulum-v1'"]),
    (["env_id=CartPole-v1"], ["SAC needs a continuous Box action space; got Discrete(2)"]),
    (["env_id=tests.custom_envs:UnboundedAction-v0"], ["finite action bounds"]),
    (["env_id=tests.custom_envs:TextObservation-v0"], ["observation space"]),
    (["env_id=no_such_module:Env-v0"], ["cannot import module 'no_such_module'"]),
    (["env_kwargs={'no_such_argument': 1}"], ["cannot make env 'Pendulum-v1'", "no_such_argument"]),
    (["total_steps=0"], ["total_steps must be a positive integer"]),
    (["batch_size=-1"], ["batch_size must be a positive integer"]),
    (["learning_starts=30000"], ["learning_starts (30000) must not exceed total_steps (20000)"]),
    (["batch_size=512", "buffer_size=256"], ["batch_size (512) must not exceed buffer_size (256)"]),
    (["gamma=1.5"], ["gamma must be in [0, 1]"]),
    (["hidden_sizes=[]"], ["hidden_sizes must be a non-empty list"]),
    (["learn_alpha=maybe"], ["learn_alpha must be True or False"]),
    (["batchsize=3"], ["unknown config entry 'batchsize'; did you mean 'batch_size'?"]),
])
def test_train_refuses_bad_input_before_any_work(workdir: Path, updates, fragments):
    result = run_cli(["-m", "sac.train", "with", *updates], workdir, timeout=120)
    _assert_one_line_error(result, *fragments)
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_bad_input_is_caught_before_tensorflow_is_imported(workdir: Path):
    result = run_cli(["-X", "importtime", "-m", "sac.train", "with", "env_id=CartPole-v1"], workdir, timeout=120)
    assert result.returncode != 0 and "continuous Box" in result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "import time:" in line]
    assert "gymnasium" in imported  # the env was really looked at
    assert not any(name.split(".")[0] in ("tensorflow", "keras") for name in imported)


def test_unknown_named_config_is_refused_without_a_traceback(workdir: Path):
    result = run_cli(["-m", "sac.train", "with", "half_cheeta"], workdir, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "half_cheetah" in result.stderr  # Sacred lists the named configs there are


def test_dict_observations_are_flattened_and_asymmetric_boxes_train(workdir: Path):
    # eval_every and checkpoint_every beyond total_steps are legal: both happen once, at the end.
    run = train(workdir, "env_id=tests.custom_envs:DictObservation-v0", "total_steps=60", "learning_starts=30",
                "eval_every=1000000", "checkpoint_every=1000000", "eval_episodes=1", "hidden_sizes=[8]",
                "batch_size=8", "log_every=30")
    assert read_metrics(run)["eval/return_mean"]["steps"] == [60]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["model-60.pkl"]
    result = run_cli(["-m", "sac.play", str(run), "--no-render"], workdir)
    assert result.returncode == 0 and "mean return" in result.stdout, result.stderr


def test_play_refuses_missing_foreign_and_mismatched_checkpoints(workdir: Path):
    _assert_one_line_error(run_cli(["-m", "sac.play", str(workdir / "nothing")], workdir), "does not exist")
    (workdir / "junk.pkl").write_bytes(b"not a pickle at all")
    _assert_one_line_error(run_cli(["-m", "sac.play", str(workdir / "junk.pkl")], workdir), "damaged or truncated")
    run = train(workdir, "total_steps=20", "learning_starts=20", "eval_every=20", "eval_episodes=1",
                "hidden_sizes=[8]", "batch_size=8", "log_every=20")
    _assert_one_line_error(run_cli(["-m", "sac.play", "HalfCheetah-v5", str(run), "--no-render"], workdir),
                           "HalfCheetah-v5 observations have shape (17,)", "takes (3,)")
    _assert_one_line_error(run_cli(["-m", "sac.play", "MountainCarContinuous-v0", str(run), "--no-render"],
                                   workdir), "observations have shape (2,)")
    _assert_one_line_error(run_cli(["-m", "sac.play", str(run), "--video", "out.avi"], workdir), "--video")
