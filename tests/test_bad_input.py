"""Bad input fails fast with one clear line, no traceback, a non-zero exit and no run directory."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import assert_play_output, malicious_pickle, read_metrics, run_cli, train

pytestmark = pytest.mark.smoke


def _assert_one_line_error(result, *fragments: str) -> None:
    """A refusal whose one error line contains each fragment. Still used by tests/test_faults.py and
    tests/test_multi_worker.py (messages with ports, paths and exception texts, not yet pinned whole);
    the refusals of this module are compared whole (_assert_refused)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], output


def _assert_refused(result, message: str | re.Pattern) -> None:
    """A refusal: a non-zero exit, no traceback, and one error line, which is exactly
    "error: <message>" (the whole of what the user is told). A compiled pattern must match the
    whole message: it stands for the parts that other libraries word (an env's own exception)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    told = errors[0][len("error: "):]
    if isinstance(message, re.Pattern):
        assert message.fullmatch(told), (message.pattern, output)
    else:
        assert told == message, output


@pytest.mark.parametrize("updates, message", [
    (["env_id=Pendulm-v1"],
     "unknown env id 'Pendulm-v1'; did you mean 'Pendulum-v1' or 'Pendulum-V-v0' or 'Pendulum-P-v0'?"),
    (["env_id=CartPole-v1"], "SAC needs a continuous Box action space; got Discrete(2)"),
    (["env_id=tests.custom_envs:UnboundedAction-v0"],
     "SAC needs finite action bounds to squash into; got low=[-inf -inf], high=[inf inf]"),
    (["env_id=tests.custom_envs:TextObservation-v0"],
     "SAC here needs a Box (or Dict of Box) observation space; got Text(1, 8, "
     "charset=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz)"),
    (["env_id=no_such_module:Env-v0"], "cannot import module 'no_such_module' named in env_id "
                                       "'no_such_module:Env-v0': ModuleNotFoundError: No module named 'no_such_module'"),
    # The env's own TypeError, as Gymnasium words it, follows sac's part of the message.
    (["env_kwargs={'no_such_argument': 1}"], re.compile(
        re.escape("cannot make env 'Pendulum-v1' with env_kwargs {'no_such_argument': 1}: TypeError: ")
        + r".*\bunexpected keyword argument 'no_such_argument'.*")),
    (["total_steps=0"], "total_steps must be a positive integer, got 0"),
    (["batch_size=-1"], "batch_size must be a positive integer, got -1"),
    (["learning_starts=30000"], "learning_starts (30000) must not exceed total_steps (20000)"),
    (["batch_size=512", "buffer_size=256"], "batch_size (512) must not exceed buffer_size (256)"),
    (["gamma=1.5"], "gamma must be in [0, 1], got 1.5"),
    (["hidden_sizes=[]"], "hidden_sizes must be a non-empty list of positive integers, got []"),
    (["learn_alpha=maybe"], "learn_alpha must be True or False, got 'maybe'"),
    (["batchsize=3"], "unknown config entry 'batchsize'; did you mean 'batch_size'?"),
])
def test_train_refuses_bad_input_before_any_work(workdir: Path, updates, message):
    result = run_cli(["-m", "sac.train", "with", *updates], workdir, timeout=120)
    _assert_refused(result, message)
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
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["model-60.pkl", "state-60.pkl"]
    result = run_cli(["-m", "sac.play", str(run), "--no-render"], workdir)
    assert_play_output(result, run / "checkpoints" / "model-60.pkl")


def test_play_refuses_missing_foreign_and_mismatched_checkpoints(workdir: Path):
    _assert_refused(run_cli(["-m", "sac.play", str(workdir / "nothing")], workdir),
                    f"{workdir / 'nothing'} does not exist (expected a run directory or a model-<step>.pkl file)")
    (workdir / "junk.pkl").write_bytes(b"not a pickle at all")
    _assert_refused(run_cli(["-m", "sac.play", str(workdir / "junk.pkl")], workdir),
                    f"checkpoint {workdir / 'junk.pkl'} is damaged or truncated (its end marker is missing)")
    run = train(workdir, "total_steps=20", "learning_starts=20", "eval_every=20", "eval_episodes=1",
                "hidden_sizes=[8]", "batch_size=8", "log_every=20")
    _assert_refused(run_cli(["-m", "sac.play", "HalfCheetah-v5", str(run), "--no-render"], workdir),
                    f"{run / 'checkpoints' / 'model-20.pkl'} was trained on Pendulum-v1, not HalfCheetah-v5; "
                    "add --allow-other-env to play it there anyway")
    other = ["--no-render", "--allow-other-env"]
    _assert_refused(run_cli(["-m", "sac.play", "HalfCheetah-v5", str(run), *other], workdir),
                    "HalfCheetah-v5 observations have shape (17,), but the checkpoint's policy (Pendulum-v1) "
                    "takes (3,)")
    _assert_refused(run_cli(["-m", "sac.play", "MountainCarContinuous-v0", str(run), *other], workdir),
                    "MountainCarContinuous-v0 observations have shape (2,), but the checkpoint's policy "
                    "(Pendulum-v1) takes (3,)")
    # Same observation shape, other action bounds ([-1, 1] instead of Pendulum's [-2, 2]).
    _assert_refused(run_cli(["-m", "sac.play", "tests.custom_envs:CrashesAtStep700-v0", str(run), *other],
                            workdir),
                    "tests.custom_envs:CrashesAtStep700-v0 actions lie in [[-1.], [1.]], but the checkpoint's "
                    "policy (Pendulum-v1) acts in [[-2.], [2.]]")
    _assert_refused(run_cli(["-m", "sac.play", str(run), "--video", "out.avi"], workdir),
                    "--video must end in .mp4 or .gif, got out.avi")


# --- Resume and play of runs and files that cannot work -------------------------------------------------

@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> Path:
    """A directory with runs/1: a short Pendulum run with training states at steps 150 and 300."""
    cwd = tmp_path_factory.mktemp("resume_inputs")
    train(cwd, "total_steps=300", "learning_starts=200", "checkpoint_every=150", "eval_every=300",
          "eval_episodes=1", "hidden_sizes=[16]", "batch_size=16", "log_every=100")
    run = cwd / "runs" / "1"
    other_env = cwd / "runs" / "2"  # a run whose config names another env than its states were written for
    shutil.copytree(run, other_env)
    config = json.loads((other_env / "config.json").read_text())
    config["env_id"] = "MountainCarContinuous-v0"
    (other_env / "config.json").write_text(json.dumps(config))
    damaged = cwd / "runs" / "3"  # every training state cut short
    shutil.copytree(run, damaged)
    for state in (damaged / "checkpoints").glob("state-*.pkl"):
        state.write_bytes(state.read_bytes()[:1000])
    for path in (run / "checkpoints").glob("model-*.pkl"):  # play inputs: truncated and malicious files
        (cwd / "truncated.pkl").write_bytes(path.read_bytes()[:-100])
    return cwd


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# What resume= may change (sac.resume's list), as the refusals word it.
_CAN_CHANGE = "total_steps, num_threads, strategy, cpu_replicas, tpu_address, worker_timeout, video_every and render"


@pytest.mark.parametrize("updates, message", [
    (["resume=runs/99"], "resume: no run directory 'runs/99'"),
    (["resume=5"], "resume must be a run directory such as runs/3, got 5"),
    (["resume=runs/1", "total_steps=200"], "total_steps=200 is below step 300, where runs/1 stopped"),
    (["resume=runs/1", "env_id=HalfCheetah-v5"], "resume keeps runs/1's config: env_id='HalfCheetah-v5' would "
                                                 f"change it (it was 'Pendulum-v1'); only {_CAN_CHANGE} can change"),
    (["resume=runs/1", "seed=4"],
     f"resume keeps runs/1's config: seed=4 would change it (it was 0); only {_CAN_CHANGE} can change"),
    (["half_cheetah", "resume=runs/1"], "resume continues runs/1 with its own config; drop the named config "
                                        f"'half_cheetah' (only {_CAN_CHANGE} can change)"),
    (["resume=runs/2", "total_steps=400"], "resume: runs/2/checkpoints/state-300.pkl was written for env "
                                           "'Pendulum-v1', but runs/2/config.json says 'MountainCarContinuous-v0'"),
    (["resume=runs/3", "total_steps=400"], "runs/3 has no usable training state (checkpoints/state-<step>.pkl); "
                                           "it was stopped before its first checkpoint, or its states are damaged: "
                                           "start it again"),
])
def test_resume_refuses_what_cannot_work_and_changes_nothing_on_disk(finished_runs: Path, updates, message):
    before = _tree_digest(finished_runs)
    result = run_cli(["-m", "sac.train", "with", *updates], finished_runs, timeout=120)
    _assert_refused(result, message)
    assert _tree_digest(finished_runs) == before


def test_resume_refuses_a_run_that_was_already_resumed(finished_runs: Path, tmp_path: Path):
    shutil.copytree(finished_runs / "runs" / "1", tmp_path / "runs" / "1")
    (tmp_path / "runs" / "5").mkdir()
    (tmp_path / "runs" / "1" / "resumed_by.json").write_text(json.dumps({"run_dir": str(tmp_path / "runs" / "5")}))
    before = _tree_digest(tmp_path)
    result = run_cli(["-m", "sac.train", "with", "resume=runs/1", "total_steps=400"], tmp_path, timeout=120)
    _assert_refused(result, f"runs/1 was already resumed as {tmp_path / 'runs' / '5'}; resume that run instead")
    assert _tree_digest(tmp_path) == before


def test_resume_goes_through_a_resumed_run_that_never_saved_a_state(finished_runs: Path, tmp_path: Path):
    """runs/2 resumed runs/1 but was stopped before its first checkpoint: resuming runs/2 continues
    from runs/1's newest state, and runs/2's metrics (all of steps that are redone) are emptied."""
    origin = tmp_path / "runs" / "1"
    shutil.copytree(finished_runs / "runs" / "1", origin)
    middle = tmp_path / "runs" / "2"
    middle.mkdir()
    (middle / "config.json").write_text((origin / "config.json").read_text())
    (middle / "resume.json").write_text(json.dumps({"resumed_from": str(origin.resolve()), "step": 300}))
    (middle / "metrics.json").write_text(json.dumps({"eval/return_mean": {"steps": [350], "values": [-1.0],
                                                                          "timestamps": ["x"]}}))
    (origin / "resumed_by.json").write_text(json.dumps({"run_dir": str(middle.resolve())}))
    result = run_cli(["-m", "sac.train", "with", "resume=runs/2", "total_steps=400"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    link = json.loads((tmp_path / "runs" / "3" / "resume.json").read_text())
    assert link["step"] == 300 and link["state"] == str((origin / "checkpoints" / "state-300.pkl").resolve())
    assert link["resumed_from"] == str(middle.resolve())
    assert read_metrics(middle) == {}
    assert read_metrics(tmp_path / "runs" / "3")["eval/return_mean"]["steps"] == [400]


def test_play_refuses_truncated_and_malicious_checkpoints_and_runs_nothing(finished_runs: Path):
    before = _tree_digest(finished_runs)
    result = run_cli(["-m", "sac.play", "truncated.pkl", "--no-render"], finished_runs)
    _assert_refused(result, "checkpoint truncated.pkl is damaged or truncated (its end marker is missing)")
    marker = finished_runs / "pwned"
    evil = finished_runs / "evil.pkl"
    evil.write_bytes(malicious_pickle(marker))
    result = run_cli(["-m", "sac.play", str(evil), "--no-render"], finished_runs)
    _assert_refused(result, f"refusing checkpoint {evil}: it asks to load posix.system, and a checkpoint holds "
                            "plain data only")
    assert not marker.exists()
    evil.unlink()
    assert _tree_digest(finished_runs) == before


def test_resume_skips_a_damaged_newest_state_with_a_warning_and_uses_the_previous_one(finished_runs: Path, tmp_path):
    cwd = tmp_path
    shutil.copytree(finished_runs / "runs" / "1", cwd / "runs" / "1")
    newest = cwd / "runs" / "1" / "checkpoints" / "state-300.pkl"
    newest.write_bytes(newest.read_bytes()[:-50])  # cut short, as by a disk that lost its tail
    (newest.parent / ".state-450.pkl.tmp-4242").write_bytes(b"half")  # what kill -9 mid-write leaves
    result = run_cli(["-m", "sac.train", "with", "resume=runs/1", "total_steps=400"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "state-300.pkl is damaged or truncated" in warnings[0], result.stderr
    assert json.loads((cwd / "runs" / "2" / "resume.json").read_text())["step"] == 150
    assert read_metrics(cwd / "runs" / "2")["eval/return_mean"]["steps"] == [300, 400]
