"""Checkpoint files: policy outputs survive the round trip, files are written atomically and pruned,
loading refuses anything that is not plain data, the newest intact file is used, and the run's
checkpoint writer never writes NaN and leaves every earlier file as it was when a write fails."""
from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint
from sac.errors import UserError
from sac.networks import build_actor, build_critic
from sac.policy import PolicySpec, find_policy_file, load_policy, policy_payload, read_policy_file

from .conftest import malicious_pickle

pytestmark = pytest.mark.unit

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([3.0, 0.5], np.float32)
CONFIG = {"env_id": "Some-v0", "env_kwargs": {"a": 1}, "hidden_sizes": [16, 8]}


def _payload(step: int = 100, seed: int = 0) -> tuple[dict, object]:
    actor = build_actor(5, LOW, HIGH, [16, 8], seed=seed)
    critic = build_critic(5, 2, [16, 8], seed=seed + 1)
    spec = PolicySpec(env_id=CONFIG["env_id"], env_kwargs=CONFIG["env_kwargs"], observation_shape=(5,),
                      action_low=LOW, action_high=HIGH, hidden_sizes=(16, 8))
    payload = policy_payload(step=step, spec=spec, config=CONFIG, actor_weights=actor.get_weights(),
                             critic_weights=critic.get_weights())
    return payload, actor


def test_round_trip_gives_the_same_actions_and_every_variable(tmp_path: Path):
    payload, actor = _payload(seed=3)
    path = checkpoint.write_checkpoint(tmp_path, payload)
    policy = load_policy(path)
    obs = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs), actor.mode(obs).numpy())
    np.testing.assert_array_equal(policy.act(obs[0]), actor.mode(obs[:1]).numpy()[0])
    restored = policy.actor.get_weights()
    assert len(restored) == len(actor.get_weights()) == 6
    for a, b in zip(restored, actor.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded = read_policy_file(path)
    assert loaded["env_kwargs"] == {"a": 1} and loaded["step"] == 100
    for a, b in zip(loaded["critic"], payload["critic"]):
        np.testing.assert_array_equal(a, b)


def test_only_the_newest_checkpoints_are_kept_and_no_temporary_file_remains(tmp_path: Path):
    for step in (10, 20, 30, 40):  # as CheckpointWriter does: write, then prune
        checkpoint.write_checkpoint(tmp_path, _payload(step)[0])
        checkpoint.prune_checkpoints(tmp_path, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["model-30.pkl", "model-40.pkl"]
    assert find_policy_file(tmp_path)[0] == tmp_path / "model-40.pkl"


def test_a_pickle_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model-1.pkl"
    evil.write_bytes(malicious_pickle(marker))
    with pytest.raises(UserError, match="plain data only"):
        read_policy_file(evil)
    assert not marker.exists()


def test_truncated_foreign_and_missing_files_are_refused_clearly(tmp_path: Path):
    good = checkpoint.write_checkpoint(tmp_path, _payload()[0])
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="damaged or truncated"):
        read_policy_file(truncated)
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps({"some": "dict"}))
    with pytest.raises(UserError, match="not a sac checkpoint"):
        read_policy_file(foreign)
    with pytest.raises(UserError, match="does not exist"):
        read_policy_file(tmp_path / "nothing.pkl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint"):
        find_policy_file(tmp_path / "empty")


def test_a_damaged_byte_is_detected_by_the_checksum(tmp_path: Path):
    path = checkpoint.write_checkpoint(tmp_path, _payload()[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, inside the weights: the pickle itself still parses
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum does not match"):
        read_policy_file(path)


def _state(step: int) -> dict:
    return {"format": checkpoint.STATE_FORMAT, "version": checkpoint.VERSION, "step": step,
            "big": np.arange(100_000, dtype=np.float32) + step}


def test_the_newest_intact_training_state_is_used_and_damaged_ones_are_skipped_with_a_warning(tmp_path: Path, capsys):
    for step in (100, 200, 300):
        checkpoint.write_checkpoint(tmp_path, _state(step), "state")
    newest = tmp_path / "state-300.pkl"
    newest.write_bytes(newest.read_bytes()[:-1000])  # cut short, as by a crash mid-copy
    middle = tmp_path / "state-200.pkl"
    data = bytearray(middle.read_bytes())
    data[5000] ^= 0xFF
    middle.write_bytes(bytes(data))
    (tmp_path / ".state-400.pkl.tmp-12345").write_bytes(b"half written")  # what kill -9 mid-write leaves
    path, payload = checkpoint.load_newest_state(tmp_path)
    assert path == tmp_path / "state-100.pkl" and payload["step"] == 100
    np.testing.assert_array_equal(payload["big"], _state(100)["big"])
    warnings = capsys.readouterr().err
    assert "state-300.pkl is damaged or truncated" in warnings and "state-200.pkl is damaged" in warnings
    assert checkpoint.load_newest_state(tmp_path / "nothing") is None


def test_a_full_disk_leaves_the_previous_checkpoint_intact_and_no_temporary_file(tmp_path: Path, monkeypatch):
    checkpoint.write_checkpoint(tmp_path, _state(100), "state")
    before = (tmp_path / "state-100.pkl").read_bytes()
    real_open = open

    def open_full_disk(path, mode="r", *args, **kwargs):  # writes go to /dev/full: ENOSPC from the kernel
        if "w" in mode and Path(path).name.startswith(".state-200"):
            Path(path).touch()  # the temporary file exists, as it would on a real disk
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", open_full_disk, raising=False)
    with pytest.raises(OSError) as raised:
        checkpoint.write_checkpoint(tmp_path, _state(200), "state")
    assert raised.value.errno == errno.ENOSPC
    assert sorted(os.listdir(tmp_path)) == ["state-100.pkl"]  # no new file, no temporary, no pruning
    assert (tmp_path / "state-100.pkl").read_bytes() == before
    assert checkpoint.load_newest_state(tmp_path)[1]["step"] == 100


def test_a_training_state_given_where_a_policy_is_expected_points_to_the_policy(tmp_path: Path):
    path = checkpoint.write_checkpoint(tmp_path, _state(100), "state")
    with pytest.raises(UserError, match="is a training state .*model-100.pkl"):
        read_policy_file(path)


def test_a_run_directory_falls_back_to_the_newest_intact_policy_with_a_warning(tmp_path: Path, capsys):
    for step in (100, 200):
        checkpoint.write_checkpoint(tmp_path / "checkpoints", _payload(step, seed=step)[0])
    newest = tmp_path / "checkpoints" / "model-200.pkl"
    newest.write_bytes(newest.read_bytes()[:-100])
    assert load_policy(tmp_path).step == 100
    warning = capsys.readouterr().err
    assert "model-200.pkl is damaged or truncated" in warning and "; trying the previous checkpoint" in warning
    (tmp_path / "checkpoints" / "model-100.pkl").write_bytes(b"junk")
    with pytest.raises(UserError, match="no policy checkpoint in .* reads back whole"):
        load_policy(tmp_path)


def _writer_run(tmp_path: Path):
    from sac.builder import build_run
    from sac.config import run_config

    config = run_config(total_steps=400, learning_starts=100, hidden_sizes=[8], batch_size=8, eval_episodes=1,
                        keep_checkpoints=1, jit_compile=False)
    return build_run(config, run_dir=tmp_path, stream=open(os.devnull, "w"))


def _loop_state(step: int):
    from sac.loop import LoopState

    return LoopState(step=step, episode_return=np.zeros(1), episode_length=np.zeros(1, int))


def test_a_failed_state_write_leaves_every_earlier_file_and_names_the_intact_state(tmp_path: Path, monkeypatch):
    parts = _writer_run(tmp_path)
    directory = tmp_path / "checkpoints"
    parts.checkpoints(100, _loop_state(100))
    assert sorted(os.listdir(directory)) == ["model-100.pkl", "state-100.pkl"]
    before = {name: (directory / name).read_bytes() for name in os.listdir(directory)}
    real_write = checkpoint.write_payload

    def full_disk_for_states(path, payload):
        if Path(path).name.startswith("state-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, payload)

    monkeypatch.setattr(checkpoint, "write_payload", full_disk_for_states)
    with pytest.raises(UserError, match=r"could not write the checkpoint of step 200 .*No space left on device; "
                                        r"the previous training state .*state-100.pkl is intact"):
        parts.checkpoints(200, _loop_state(200))
    # keep_checkpoints=1, yet model-100 is still there: nothing is pruned before both files are written.
    assert sorted(os.listdir(directory)) == ["model-100.pkl", "model-200.pkl", "state-100.pkl"]
    assert all((directory / name).read_bytes() == data for name, data in before.items())
    monkeypatch.setattr(checkpoint, "write_payload", real_write)
    parts.checkpoints(300, _loop_state(300))
    assert sorted(os.listdir(directory)) == ["model-300.pkl", "state-100.pkl", "state-300.pkl"]
    assert parts.checkpoints.last_state == directory / "state-300.pkl"
    parts.close()


def test_weights_holding_nan_are_never_written(tmp_path: Path):
    from sac.loop import NonFiniteError

    parts = _writer_run(tmp_path)
    parts.checkpoints(100, _loop_state(100))
    weights = parts.agent.critic.get_weights()
    weights[0][0, 0] = np.nan
    parts.agent.critic.set_weights(weights)
    with pytest.raises(NonFiniteError) as raised:
        parts.checkpoints(200, _loop_state(200))
    assert raised.value.step == 200 and any(name.startswith("critic/") for name in raised.value.quantities)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["model-100.pkl", "state-100.pkl"]
    parts.close()
