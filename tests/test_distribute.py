"""tf.distribute strategies without any GPU: the CPU split into logical devices (cpu_replicas).
Updates under `mirrored` equal those on one device; a mirrored run writes, plays and resumes like a
default run, across strategies; a machine that cannot run a strategy refuses it before any work."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from sac import checkpoint
from sac.distribute import Cluster, check_request, read_cluster
from sac.errors import UserError

from .conftest import REPO, assert_play_output, read_metrics, run_cli, train
from .test_bad_input import _assert_refused

SHORT = ["total_steps=800", "learning_starts=400", "eval_every=400", "eval_episodes=2", "log_every=100",
         "hidden_sizes=[32,32]", "batch_size=32", "checkpoint_every=400"]
MIRRORED = ["strategy=mirrored", "cpu_replicas=2"]


def _no_gpu() -> bool:
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def _has_tpu() -> bool:
    """A local TPU device or a named one: where strategy=tpu with an empty tpu_address is not refused."""
    import os

    return any(Path(p).exists() for p in ("/dev/accel0", "/dev/vfio/0")) or bool(os.environ.get("TPU_NAME"))


# --- The cluster and the checks (unit) ---------------------------------------------------------------

@pytest.mark.unit
def test_tf_config_places_this_process_among_the_workers():
    spec = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    cluster = read_cluster(json.dumps({"cluster": spec, "task": {"type": "worker", "index": 1}}))
    assert (cluster.num_workers, cluster.worker_index, cluster.is_chief) == (3, 2, False)
    chief = read_cluster(json.dumps({"cluster": spec, "task": {"type": "chief", "index": 0}}))
    assert (chief.worker_index, chief.is_chief) == (0, True)
    workers_only = read_cluster(json.dumps({"cluster": {"worker": ["b:1", "c:1"]}, "task": {"type": "worker",
                                                                                           "index": 0}}))
    assert (workers_only.num_workers, workers_only.is_chief) == (2, True)
    for bad, message in [(None, "needs TF_CONFIG"), ("{", "not usable"), ('{"cluster": {}}', "not usable"),
                         (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}),
                          "needs workers"),
                         (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
                          "is not in its cluster"),
                         (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["p:1"]},
                                      "task": {"type": "worker", "index": 0}}), "chief and worker tasks only")]:
        with pytest.raises(UserError, match=message):
            read_cluster(bad)


def _check(**kwargs) -> None:
    args = dict(strategy="mirrored", cpu_replicas=2, tpu_address="", batch_size=256, cluster=Cluster())
    check_request(**{**args, **kwargs})


@pytest.mark.unit
def test_requests_a_machine_cannot_run_are_refused():
    _check()  # two logical CPUs, 128 rows each
    _check(strategy="multi_worker", cpu_replicas=0, cluster=Cluster(num_workers=2))
    with pytest.raises(UserError, match="does not divide among 3 replicas"):
        _check(cpu_replicas=3)
    with pytest.raises(UserError, match="does not divide among 6 replicas .3 worker.s. x 2 device"):
        _check(strategy="multi_worker", cluster=Cluster(num_workers=3))
    with pytest.raises(UserError, match="strategy=default trains on one device"):
        _check(strategy="default")
    with pytest.raises(UserError, match="no TPU answers at grpc://127.0.0.1:1"):
        _check(strategy="tpu", cpu_replicas=0, tpu_address="grpc://127.0.0.1:1")


# These two refusals only exist on a machine without the hardware: on a GPU or TPU host the request
# is valid, so the test is skipped there (reported as skipped, not passed without its assertion).

@pytest.mark.unit
def test_mirrored_without_cpu_replicas_is_refused_on_a_machine_without_gpus():
    if not _no_gpu():
        pytest.skip("this machine has a GPU: strategy=mirrored with cpu_replicas=0 is valid here")
    with pytest.raises(UserError, match="needs GPUs and this machine has none; set cpu_replicas"):
        _check(cpu_replicas=0)


@pytest.mark.unit
def test_tpu_is_refused_on_a_machine_without_one():
    if _has_tpu():
        pytest.skip("this machine has a TPU: strategy=tpu is valid here")
    with pytest.raises(UserError, match="no TPU is reachable"):
        _check(strategy="tpu", cpu_replicas=0)


@pytest.mark.smoke
@pytest.mark.parametrize("updates, env, message", [
    (["strategy=mirrored"], {}, "strategy=mirrored needs GPUs and this machine has none; set cpu_replicas=N to "
                                "mirror over N logical CPU devices"),
    (["strategy=mirrored", "cpu_replicas=3"], {},
     "batch_size=256 does not divide among 3 replicas (1 worker(s) x 3 device(s)); choose a multiple of 3"),
    (["strategy=tpu"], {}, "strategy=tpu: no TPU is reachable (this machine has no TPU device and tpu_address is "
                           "empty; give tpu_address=grpc://host:8470 or a TPU name)"),
    (["strategy=multi_worker"], {}, "strategy=multi_worker needs TF_CONFIG, the cluster as TensorFlow defines it, "
                                    """e.g. TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, """
                                    """"task": {"type": "worker", "index": 0}}'"""),
    (["strategy=multi_worker"], {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}}'},
     "TF_CONFIG is not usable (KeyError: 'task'); it needs "
     '{"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}'),
    (["strategy=parallel"], {}, "strategy must be one of default, mirrored, tpu, multi_worker, got 'parallel'"),
])
def test_train_refuses_a_strategy_it_cannot_run_before_any_work(workdir: Path, updates, env, message):
    if updates == ["strategy=mirrored"] and not _no_gpu():
        pytest.skip("this machine has a GPU: strategy=mirrored is valid here")
    if updates == ["strategy=tpu"] and _has_tpu():
        pytest.skip("this machine has a TPU: strategy=tpu is valid here")
    result = run_cli(["-m", "sac.train", "with", *updates], workdir, timeout=120, env=env)
    _assert_refused(result, message)
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


# --- Equivalence of the distributed update ------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("network", ["mlp", "lstm"])
def test_mirrored_updates_equal_one_device_updates_to_float32_round_off(tmp_path: Path, network):
    """Same weights, same global batches: 8 updates (5 calls of 1, one of 3) under MirroredStrategy
    over 2 logical CPUs and on one device give the same weights, target critics, Adam moments,
    alpha, metrics and sampled actions (a fresh process: the CPU is split before TensorFlow starts).
    With LSTM actor and critic: sequences with padding and burn-in, and a recurrent acting state."""
    result = run_cli([str(REPO / "tests" / "distributed_equivalence.py"), "2", "6", network], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    assert worst["replicas"] == 2 and worst["updates"] == 8
    assert worst["moved"] > 1e-3  # the updates really changed the weights
    for group in ("actor", "critic", "target_critic", "actor_optimizer", "critic_optimizer", "alpha_optimizer",
                  "scalars", "metrics", "actions"):
        assert worst[group] < 2e-6, (group, worst)


# --- Whole runs --------------------------------------------------------------------------------------

def _final_agent(run: Path) -> dict:
    return checkpoint.load_newest_state(run / "checkpoints")[1]["agent"]


@pytest.mark.smoke
def test_a_mirrored_run_writes_plays_resumes_after_kill_9_and_crosses_strategies(tmp_path: Path):
    env = {"CUDA_VISIBLE_DEVICES": "-1"}
    killer = ["env_id=tests.custom_envs:SignalsItself-v0"]
    (tmp_path / "alone").mkdir()
    alone = train(tmp_path / "alone", *SHORT, *MIRRORED, *killer, 'env_kwargs={"at_step": 0}', env=env)
    assert sorted(p.name for p in (alone / "checkpoints").iterdir()) == [
        "model-400.pkl", "model-800.pkl", "state-400.pkl", "state-800.pkl"]
    metrics = read_metrics(alone)
    assert metrics["loss/critic"]["steps"] == [500, 600, 700, 800] and metrics["eval/return_mean"]["steps"] == [400, 800]
    result = run_cli(["-m", "sac.play", str(alone), "--no-render"], tmp_path)
    assert_play_output(result, alone / "checkpoints" / "model-800.pkl")

    # kill -9 at step 600 (after the state of step 400), then resume under mirrored: exactly the run
    # left alone.
    cwd = tmp_path / "killed"
    (cwd / "runs").mkdir(parents=True)
    killed = run_cli(["-m", "sac.train", "with", *SHORT, *MIRRORED, *killer, 'env_kwargs={"at_step": 600, '
                      '"signals": ["SIGKILL"]}'], cwd, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = run_cli(["-m", "sac.train", "with", "resume=runs/1"], cwd, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_agent(alone), _final_agent(cwd / "runs" / "2")
    for group in a:
        for x, y in zip(a[group], b[group], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=group)

    # Checkpoints do not depend on the strategy: the mirrored run goes on under default, and that
    # one under mirrored again.
    more = run_cli(["-m", "sac.train", "with", "resume=runs/2", "total_steps=1000", "strategy=default",
                    "cpu_replicas=0"], cwd, env=env)
    assert more.returncode == 0, more.stderr[-3000:]
    assert json.loads((cwd / "runs" / "3" / "config.json").read_text())["strategy"] == "default"
    again = run_cli(["-m", "sac.train", "with", "resume=runs/3", "total_steps=1200", *MIRRORED], cwd, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    final = checkpoint.load_newest_state(cwd / "runs" / "4" / "checkpoints")[1]
    assert final["step"] == 1200 and int(final["agent"]["scalars"][1]) == 800  # 800 updates after step 400
    assert read_metrics(cwd / "runs" / "4")["eval/return_mean"]["steps"] == [1200]
