"""Same seed, same run: two trainings with one seed log identical metrics over a window of more
than 500 gradient steps; another seed does not."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import read_metrics, train

# Same seed, same run is a CPU promise (GPU kernels may reorder sums): these runs never see a GPU.
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1"}

pytestmark = pytest.mark.unit

RUN = ["total_steps=1200", "learning_starts=600", "eval_every=400", "eval_episodes=2", "log_every=100",
       "hidden_sizes=[64,64]", "batch_size=64", "checkpoint_every=1200"]
TIMING = {"train/steps_per_second"}


def _learning_metrics(run: Path) -> dict[str, tuple[list, list]]:
    return {name: (m["steps"], m["values"]) for name, m in read_metrics(run).items() if name not in TIMING}


def test_same_seed_identical_metrics_other_seed_different(tmp_path: Path):
    first = _learning_metrics(train(tmp_path, *RUN, "seed=5", env=CPU_ONLY))
    second = _learning_metrics(train(tmp_path, *RUN, "seed=5", env=CPU_ONLY))
    other = _learning_metrics(train(tmp_path, *RUN, "seed=6", env=CPU_ONLY))
    # 600 gradient steps (steps 601..1200), logged every 100 steps.
    assert first["loss/critic"][0] == list(range(700, 1201, 100))
    assert first == second
    assert first["loss/critic"][1] != other["loss/critic"][1]
    assert first["eval/return_mean"][1] != other["eval/return_mean"][1]
