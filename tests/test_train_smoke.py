"""`python -m sac.train` end to end on a short run that really performs gradient steps, then
`python -m sac.play` on what it wrote."""
from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sac.policy import load_policy

from .conftest import assert_play_output, read_metrics, run_cli, train

pytestmark = pytest.mark.smoke

SHORT_RUN = ["total_steps=600", "learning_starts=300", "eval_every=200", "eval_episodes=2",
             "checkpoint_every=200", "keep_checkpoints=2", "log_every=100", "hidden_sizes=[32,32]",
             "batch_size=64"]
METRICS = ["eval/return_mean", "eval/return_min", "eval/return_max", "eval/return_std",
           "train/episode_return", "train/episode_length", "loss/critic", "loss/actor", "loss/alpha", "alpha",
           "policy/entropy", "q/mean", "train/steps_per_second"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("smoke"), *SHORT_RUN)


def test_run_directory_holds_every_artefact(short_run: Path):
    for name in ("config.json", "run.json", "metrics.json", "cout.txt"):
        assert (short_run / name).is_file(), name
    assert json.loads((short_run / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((short_run / "config.json").read_text())["total_steps"] == 600
    assert list(short_run.glob("events.out.tfevents.*"))
    # keep_checkpoints=2 policies; always the newest 2 training states
    assert sorted(p.name for p in (short_run / "checkpoints").iterdir()) == ["model-400.pkl", "model-600.pkl",
                                                                              "state-400.pkl", "state-600.pkl"]
    assert "step 600/600" in (short_run / "cout.txt").read_text()
    info = json.loads((short_run / "info.json").read_text())
    assert info["target_entropy"] == pytest.approx(-0.5 + np.log(2.0), abs=1e-12)  # -dim(A)/2 on [-1, 1], Pendulum's [-2, 2]
    run = json.loads((short_run / "run.json").read_text())
    start, stop = (datetime.datetime.fromisoformat(run[key]).replace(tzinfo=datetime.timezone.utc).timestamp()
                   for key in ("start_time", "stop_time"))
    assert start < info["first_update_time"] < stop  # the wall time of the first gradient step


def test_metrics_are_indexed_by_env_step_and_updates_really_ran(short_run: Path):
    metrics = read_metrics(short_run)
    for name in METRICS:
        assert metrics[name]["steps"], name
    assert metrics["eval/return_mean"]["steps"] == [200, 400, 600]  # once each, the last one at the end
    assert metrics["loss/critic"]["steps"] == [400, 500, 600]  # only after learning_starts=300
    assert metrics["train/episode_length"]["values"][0] == 200  # Pendulum's time limit
    alphas = metrics["alpha"]["values"]
    assert all(np.isfinite(metrics["loss/critic"]["values"]))
    assert alphas[0] != 1.0 and alphas[-1] != alphas[0], "the temperature never moved: no update ran"


def test_tensorboard_has_the_same_scalars(short_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(short_run), size_guidance={"tensors": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    assert set(METRICS) <= tags
    assert [e.step for e in events.Tensors("eval/return_mean")] == [200, 400, 600]


def test_checkpoint_loads_through_the_python_api_and_play_runs_it(short_run: Path):
    policy = load_policy(short_run)
    assert policy.step == 600 and policy.env_id == "Pendulum-v1"
    action = policy.act(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0

    # The run's newest checkpoint, played exactly as the same policy plays in this process: the
    # first episode from reset(seed=0), the second from the env's own next start.
    result = run_cli(["-m", "sac.play", str(short_run), "--episodes", "2", "--no-render"], short_run)
    assert_play_output(result, short_run / "checkpoints" / "model-600.pkl", episodes=2)

    # The original README's form, ENV_ID then the checkpoint file; another seed, sampled actions.
    model_400 = short_run / "checkpoints" / "model-400.pkl"
    result = run_cli(["-m", "sac.play", "Pendulum-v1", str(model_400), "--no-render", "--seed", "3",
                      "--stochastic"], short_run)
    assert_play_output(result, model_400, seed=3, stochastic=True, env_id="Pendulum-v1")


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_play_records_a_video_without_a_display(short_run: Path, tmp_path: Path, suffix: str):
    import imageio.v3 as iio

    video = tmp_path / f"pendulum{suffix}"
    result = run_cli(["-m", "sac.play", str(short_run), "--video", str(video)], tmp_path)
    assert result.returncode == 0, result.stderr
    frames = iio.imread(video, index=None) if suffix == ".gif" else np.stack(list(iio.imiter(video)))
    assert frames.shape[0] >= 200 and frames.ndim == 4  # one frame per step of a 200-step episode
    assert frames.std() > 0  # not a blank picture


def test_mujoco_video_renders_headless(tmp_path: Path):
    """HalfCheetah through EGL: the training run is tiny, the point is the MuJoCo renderer."""
    run = train(tmp_path, "env_id=HalfCheetah-v5", "total_steps=50", "learning_starts=50", "eval_every=50",
                "eval_episodes=1", "hidden_sizes=[8]", "batch_size=8", "log_every=50")
    video = tmp_path / "cheetah.mp4"
    result = run_cli(["-m", "sac.play", str(run), "--video", str(video)], tmp_path)
    assert result.returncode == 0, result.stderr
    import imageio.v3 as iio

    frames = np.stack(list(iio.imiter(video))).astype(int)
    assert frames.shape[0] >= 1000 and frames.std() > 0
    # The camera follows the cheetah: its orange body is in every frame (a fixed camera loses it).
    body_fraction = (frames[..., 0] - frames[..., 2] > 60).mean(axis=(1, 2))
    assert body_fraction.min() > 0.002


def test_play_samples_with_stochastic_and_its_seed_makes_that_repeatable(short_run: Path):
    def play(*options: str) -> float:
        result = run_cli(["-m", "sac.play", str(short_run), "--no-render", *options], short_run)
        assert result.returncode == 0, result.stderr
        return float(result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])

    deterministic = play()
    assert play("--seed", "3") == pytest.approx(play("--seed", "3"))  # the same first state
    first, again, other = play("--stochastic", "--seed", "3"), play("--stochastic", "--seed", "3"), \
        play("--stochastic", "--seed", "4")
    assert first == again  # the same env start and the same policy noise
    assert first != other and first != play("--seed", "3") and deterministic != first


def test_print_config_lists_every_entry_with_its_source(tmp_path: Path):
    from sac.config import RunConfig

    result = run_cli(["-m", "sac.train", "print_config", "with", "hopper"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # Sacred colours what the named config changed
    assert "env_id = 'Hopper-v5'" in out and "learning_starts = 1000" in out and "reward_scale = 0.1" in out
    assert "# Adam learning rate of the policy (paper Table 1)" in out  # the comments of sac/config.py
    for entry in RunConfig.__dataclass_fields__:
        assert f"  {entry} = " in out, entry
    assert "resume = None" in out and not (tmp_path / "runs").exists()


def test_multi_dimensional_observations_several_envs_and_no_xla_from_the_command_line(tmp_path: Path):
    """A (2, 3) Box observation is flattened; num_envs=2 and jit_compile=False reach the run."""
    run = train(tmp_path, "env_id=tests.custom_envs:BoxObservation2x3-v0", "num_envs=2", "jit_compile=False",
                "total_steps=100", "learning_starts=40", "eval_every=50", "eval_episodes=2", "log_every=20",
                "hidden_sizes=[8]", "batch_size=8", "checkpoint_every=100")
    config = json.loads((run / "config.json").read_text())
    assert (config["num_envs"], config["jit_compile"]) == (2, False)
    metrics = read_metrics(run)
    assert metrics["loss/critic"]["steps"] == [60, 80, 100]
    assert metrics["train/episode_length"]["steps"] == [40, 40, 80, 80]  # two envs, 20-step episodes
    policy = load_policy(run)
    assert policy.observation_shape == (6,)
    assert policy.act(np.zeros((2, 3), np.float32)).shape == (2,)  # one raw (2, 3) observation
    assert policy.act(np.zeros((5, 6), np.float32)).shape == (5, 2)  # a flat batch
    result = run_cli(["-m", "sac.play", str(run), "--no-render"], tmp_path)
    assert_play_output(result, run / "checkpoints" / "model-100.pkl")
