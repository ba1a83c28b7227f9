"""Shared helpers: run the command-line tools in a scratch directory, read what a run wrote."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """Run `python <args>` the way a user would, from `cwd` (`env`: extra environment variables)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def train(cwd: Path, *updates: str, timeout: float = 600, env: dict[str, str] | None = None) -> Path:
    """`python -m sac.train with <updates>` in cwd; returns the run directory (it must succeed)."""
    before = set((cwd / "runs").glob("*")) if (cwd / "runs").exists() else set()
    result = run_cli(["-m", "sac.train", "with", *updates], cwd, timeout=timeout, env=env)
    assert result.returncode == 0, f"training failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    new = [p for p in (cwd / "runs").glob("*") if p.is_dir() and p not in before and p.name.isdigit()]
    assert len(new) == 1, new
    return new[0]


def read_metrics(run_dir: Path) -> dict[str, dict[str, list]]:
    return json.loads((run_dir / "metrics.json").read_text())


def sac_settings(target_entropy: float = -1.0, **changes: Any):
    """The update's settings as a run with the default config would have them (sac.builder.sac_settings,
    so the defaults come from sac/config.py alone), with a given target entropy and `changes`
    (which may go where the config's checks would not, such as a zero learning rate)."""
    from sac.builder import sac_settings as from_config
    from sac.config import run_config

    return dataclasses.replace(from_config(run_config(), target_entropy), **changes)


def pytest_collection_modifyitems(session, config, items):
    """Under pytest-xdist (tests.py's two workers) the learning runs, the longest tests by far, are
    queued first: a long test that started last would leave the other worker idle until it ended.
    In one process the order stays the files' own."""
    if hasattr(config, "workerinput"):  # set in xdist's worker processes, which collect and run the tests
        items.sort(key=lambda item: item.get_closest_marker("learning") is None)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


class _RunsAShellCommand:
    """Unpickling this with the standard unpickler would run `touch marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_pickle(marker: Path) -> bytes:
    """A hand-crafted 'checkpoint' that would create `marker` if it were ever unpickled normally."""
    return pickle.dumps({"format": "sac-policy", "x": _RunsAShellCommand(marker)})


def played_episodes(policy_source: Path, episodes: int = 1, seed: int = 0, stochastic: bool = False,
                    env_id: str | None = None) -> list[float]:
    """The returns `python -m sac.play` should report, computed in this process through the Python
    API: load_policy(policy_source, seed), the env made as play makes it (sac.envs.make_env with the
    checkpoint's env_kwargs), the first episode from reset(seed), the next ones from unseeded
    resets, each starting the policy afresh."""
    from sac.envs import make_env
    from sac.policy import load_policy

    policy = load_policy(policy_source, seed=seed)
    env = make_env(env_id or policy.env_id, policy.env_kwargs if env_id in (None, policy.env_id) else {})
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            policy.reset()
            total, done = 0.0, False
            while not done:
                action = policy.act(np.asarray(obs, np.float32).reshape(-1), stochastic=stochastic)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def assert_play_output(result: subprocess.CompletedProcess, policy_file: Path, episodes: int = 1, seed: int = 0,
                       stochastic: bool = False, env_id: str | None = None) -> None:
    """`sac.play`'s whole standard output, line for line: the checkpoint it plays and that file's
    step, then each episode's return, which must be those of the same policy played in this process
    (a randomly initialised or wrongly loaded actor would score otherwise), then their mean."""
    from sac.policy import read_policy_file

    assert result.returncode == 0, result.stderr[-3000:]
    payload = read_policy_file(policy_file)
    step = int(re.fullmatch(r"model-(\d+)\.pkl", policy_file.name).group(1))
    assert payload["step"] == step, (policy_file, payload["step"])
    returns = played_episodes(policy_file, episodes, seed, stochastic, env_id)
    want = [f"playing {policy_file} (step {step}) on {env_id or payload['env_id']}"]
    want += [f"episode {i} return {r:.2f}" for i, r in enumerate(returns)]
    want.append(f"mean return {float(np.mean(returns)):.2f}")
    assert result.stdout.splitlines() == want, result.stdout + result.stderr[-2000:]
