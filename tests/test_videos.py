"""Pictures while training: video_every records evaluation episodes as mp4 files without changing
the run; render=True mirrors env 0 into a window where a display exists and is refused where not."""
from __future__ import annotations

import re

import pytest

from tests.conftest import read_metrics, run_cli, train

pytestmark = pytest.mark.smoke

SHORT = ["total_steps=1000", "learning_starts=200", "eval_every=500", "eval_episodes=2", "hidden_sizes=[32,32]",
         "batch_size=32", "log_every=250"]


def test_video_every_films_evaluation_episodes_and_leaves_the_run_unchanged(workdir):
    import imageio.v2 as imageio

    filmed = train(workdir, *SHORT, "video_every=500", "seed=4")
    plain = train(workdir, *SHORT, "seed=4")
    videos = filmed / "videos"
    assert sorted(p.name for p in videos.iterdir()) == ["step-1000.mp4", "step-500.mp4"]
    reader = imageio.get_reader(str(videos / "step-1000.mp4"))
    frames = sum(1 for _ in reader)
    assert frames == 201  # Pendulum's 200 steps and the first observation
    # The filmed episode is evaluation episode 0 (same start, same deterministic policy): its
    # return is one of the evaluation's episode returns at that step.
    log = (filmed / "cout.txt").read_text()
    filmed_returns = {int(s): float(r) for s, r in re.findall(r"videos/step-(\d+)\.mp4 \(return (-?[\d.]+)\)", log)}
    assert sorted(filmed_returns) == [500, 1000]
    metrics = read_metrics(filmed)
    for step, value in filmed_returns.items():
        i = metrics["eval/return_max"]["steps"].index(step)
        ends = (metrics["eval/return_min"]["values"][i], metrics["eval/return_max"]["values"][i])
        assert min(abs(value - e) for e in ends) < 0.06, (step, value, ends)  # printed with one decimal
    # Filming draws no random numbers and changes nothing else: the same metrics as without it.
    other = read_metrics(plain)
    for name in ("eval/return_mean", "loss/critic", "loss/actor", "alpha"):
        assert metrics[name]["values"] == other[name]["values"], name


def test_render_is_refused_with_one_line_without_a_display(workdir):
    # MUJOCO_GL=egl, as headless servers set it: importing mujoco then logs nothing on the way either.
    result = run_cli(["-m", "sac.train", "with", "render=True"], workdir, env={"MUJOCO_GL": "egl"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: render=True needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); record videos without "
        "one with video_every=N"]
    assert not (workdir / "runs").exists() or not any(p.name.isdigit() for p in (workdir / "runs").iterdir())


def test_render_mirrors_training_env_0_into_a_window(workdir):
    # A display as far as sac can tell, drawn by SDL's dummy driver (pygame renders Pendulum).
    logs = workdir / "logs"
    logs.mkdir()
    env = {"DISPLAY": ":sac-test", "SDL_VIDEODRIVER": "dummy"}
    run = train(workdir, "env_id=tests.custom_envs:LogsItsSteps-v0", f"env_kwargs={{'log_dir': '{logs}'}}",
                "render=True", "num_envs=2", "total_steps=500", "learning_starts=100", "eval_every=500",
                "eval_episodes=1", "hidden_sizes=[16,16]", "batch_size=16", env=env)
    shown = list(logs.glob("human-*.txt"))
    assert len(shown) == 1
    window = shown[0].read_text().splitlines()
    assert sum(line.startswith("step") for line in window) == 250  # env 0's steps: 500 transitions of 2 envs
    # Exactly one env of the training process did what the window showed: env 0, step for step
    # (its resets included: the window's copy starts each episode from the same random state).
    copies = [p for p in logs.glob("None-*.txt") if p.read_text().splitlines()[:len(window)] == window]
    assert len(copies) == 1
    assert sum(line.startswith("reset") for line in window) == 2  # the first episode and the one after step 200
    assert (run / "config.json").exists()
