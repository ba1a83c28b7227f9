"""The default entropy target means the same on every action box (issue 18): -dim(A)/2 nats with the
actions in [-1, 1] units, given for the density in the env's own units; a number passed is taken as
given; print_config and info.json say what it resolved to; a resume keeps the target it trained with."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sac import checkpoint, squashed_gaussian
from sac.config import default_target_entropy, describe_target_entropy
from sac.resume import trained_target_entropy

from .conftest import run_cli, train

HUMANOID_LOW, HUMANOID_HIGH = [-0.4] * 17, [0.4] * 17


@pytest.mark.unit
def test_a_unit_box_gives_exactly_minus_half_the_dimension():
    # Exactly, not approximately: the [-1, 1] tasks (the whole validation grid but Humanoid) must
    # train bit for bit as before the change, when the default was float(-0.5 * dim).
    for dim in (1, 3, 6, 8, 17):
        assert default_target_entropy([-1.0] * dim, [1.0] * dim) == -0.5 * dim


@pytest.mark.unit
def test_other_boxes_add_the_log_half_ranges():
    box32 = float(np.float32(0.4))  # the bounds as the env gives them (float32)
    assert default_target_entropy([-box32] * 17, [box32] * 17) == pytest.approx(-8.5 + 17 * math.log(box32), abs=1e-12)
    assert default_target_entropy([-2.0], [2.0]) == pytest.approx(-0.5 + math.log(2.0), abs=1e-15)  # Pendulum
    # An asymmetric box: half-ranges 2 and 0.25 (the centre does not matter).
    assert default_target_entropy([-1.0, 0.0], [3.0, 0.5]) == pytest.approx(-1.0 + math.log(2.0) + math.log(0.25),
                                                                             abs=1e-15)


@pytest.mark.unit
def test_the_default_asks_the_same_policy_on_every_box():
    """The policy's entropy in the env's units minus the default target is the same on a [-1, 1] box
    and on a stretched one, for any pre-squash Gaussian: the temperature loss (eq. 18) then drives
    the same policy in both. The log-densities come from sac/squashed_gaussian.py, each in its box."""
    rng = np.random.default_rng(0)
    dim, samples = 4, 20_000
    low, high = np.array([-0.4, -2.0, 0.0, -1.0]), np.array([0.4, 2.0, 0.5, 3.0])
    mean = tf.constant(np.tile(rng.normal(size=dim), (samples, 1)), tf.float64)
    log_std = tf.constant(np.tile(rng.normal(scale=0.5, size=dim), (samples, 1)), tf.float64)
    noise = tf.constant(rng.standard_normal((samples, dim)), tf.float64)

    def entropy_minus_target(lo: np.ndarray, hi: np.ndarray) -> float:
        center, half = tf.constant((hi + lo) / 2), tf.constant((hi - lo) / 2)
        _, log_prob = squashed_gaussian.sample(mean, log_std, noise, center, half)
        return float(-tf.reduce_mean(log_prob)) - default_target_entropy(lo.tolist(), hi.tolist())

    unit = entropy_minus_target(-np.ones(dim), np.ones(dim))
    assert entropy_minus_target(low, high) == pytest.approx(unit, abs=1e-9)
    # The old rule (-dim/2 in the env's units) would differ by sum log half-range (-1.21 here).
    assert abs((entropy_minus_target(low, high) + default_target_entropy(low.tolist(), high.tolist()) - 0.5 * dim)
               - unit) > 1.0


@pytest.mark.unit
def test_the_description_says_units_and_source():
    assert describe_target_entropy(-24.0769, None, HUMANOID_LOW, HUMANOID_HIGH).startswith(
        "target_entropy = -24.0769 nats for the action density in the env's own units (the default: "
        "-dim(A)/2 = -8.5 in [-1, 1] units, plus sum log half-range = -15.5")
    assert describe_target_entropy(-6.0, -6.0, [-1.0] * 6, [1.0] * 6) == (
        "target_entropy = -6 nats for the action density in the env's own units (as given; -6 in [-1, 1] units)")
    assert describe_target_entropy(-0.5, None, [-2.0], [2.0], kept=True) == (
        "target_entropy = -0.5 nats for the action density in the env's own units (kept from the training "
        "state this run resumes)")


@pytest.mark.smoke
def test_print_config_shows_the_resolved_target(tmp_path: Path):
    result = run_cli(["-m", "sac.train", "print_config", "with", "humanoid"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    last = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).strip().splitlines()[-1]
    assert last == ("resolved for Humanoid-v5: target_entropy = -24.0769 nats for the action density in the "
                    "env's own units (the default: -dim(A)/2 = -8.5 in [-1, 1] units, plus sum log half-range "
                    "= -15.5769)")


SHORT = ["total_steps=400", "learning_starts=200", "eval_every=400", "eval_episodes=1", "checkpoint_every=400",
         "log_every=100", "hidden_sizes=[16,16]", "batch_size=32", "seed=2"]


@pytest.mark.smoke
def test_a_resume_keeps_the_target_the_run_trained_with(tmp_path: Path):
    """Pendulum's [-2, 2] box: the default is -0.5 + log 2, recorded in the training state."""
    first = train(tmp_path, *SHORT)
    info = json.loads((first / "info.json").read_text())
    assert info["target_entropy"] == pytest.approx(-0.5 + math.log(2.0), abs=1e-12)
    assert info["target_entropy_explained"].endswith("(the default: -dim(A)/2 = -0.5 in [-1, 1] units, plus sum "
                                                     "log half-range = 0.693147)")
    state_path = first / "checkpoints" / "state-400.pkl"
    state = checkpoint.read_state_file(state_path)
    assert state["target_entropy"] == info["target_entropy"]

    # A state written before issue 18 (no recorded target) resumes end to end with that time's
    # default, -0.5, not today's -0.5 + log 2: the resumed run reads its target from the state.
    del state["target_entropy"]
    checkpoint.write_payload(state_path, state)
    run = train(tmp_path, f"resume={first.relative_to(tmp_path)}", "total_steps=500")
    config = json.loads((run / "config.json").read_text())
    run_info = json.loads((run / "info.json").read_text())
    assert config["target_entropy"] == run_info["target_entropy"] == -0.5
    assert run_info["target_entropy_explained"] == (
        "target_entropy = -0.5 nats for the action density in the env's own units (kept from the training state "
        "this run resumes)")


@pytest.mark.unit
def test_a_recorded_target_is_the_one_a_resume_trains_with():
    # Any recorded number wins over the default of either version (the run above shows the resumed
    # run takes its target from here).
    replay = {"action_dim": 17}
    assert trained_target_entropy({"target_entropy": 0.25, "replay": replay}) == 0.25
    assert trained_target_entropy({"target_entropy": -24.0769, "replay": replay}) == -24.0769
    assert trained_target_entropy({"replay": replay}) == -8.5  # written before issue 18
