"""Config checks: the defaults and every named config pass; each kind of bad value is refused with
a message that names the entry."""
from __future__ import annotations

import pytest
from sacred.config import ConfigScope

from sac import config
from sac.errors import UserError

pytestmark = pytest.mark.unit


def _default() -> dict:
    return dict(ConfigScope(config.default_config)())


def test_defaults_are_tf_agents_haarnoja18_on_pendulum():
    cfg = _default()
    config.validate_config(cfg)
    assert (cfg["env_id"], cfg["total_steps"], cfg["learning_starts"], cfg["reward_scale"]) == \
        ("Pendulum-v1", 20_000, 1_000, 1.0)
    assert (cfg["actor_lr"], cfg["critic_lr"], cfg["alpha_lr"]) == (3e-4, 3e-4, 3e-4)
    assert (cfg["batch_size"], cfg["hidden_sizes"], cfg["tau"], cfg["gamma"], cfg["buffer_size"]) == \
        (256, [256, 256], 0.005, 0.99, 1_000_000)
    assert cfg["target_entropy"] is None


@pytest.mark.parametrize("name", sorted(config.NAMED_CONFIGS))
def test_every_named_config_is_valid(name):
    # As Sacred applies it: the named config's values are fixed, the defaults computed around them.
    named = dict(ConfigScope(config.NAMED_CONFIGS[name])())
    cfg = dict(ConfigScope(config.default_config)(fixed=named))
    config.validate_config(cfg)
    if name in ("pendulum_p", "pendulum_v"):
        assert cfg["env_id"] in ("Pendulum-P-v0", "Pendulum-V-v0")
        assert (cfg["actor_network"], cfg["critic_network"]) == ("lstm", "lstm")
        assert cfg["batch_size"] == 32  # sequences, computed from the networks
    elif name != "pendulum":
        assert cfg["env_id"].endswith("-v5") and cfg["reward_scale"] == 0.1
        assert cfg["learning_starts"] in (1_000, 10_000)
        assert cfg["batch_size"] == 256


@pytest.mark.parametrize("key, value, message", [
    ("env_id", "", "env_id"),
    ("env_kwargs", [1], "env_kwargs"),
    ("seed", -1, "seed"),
    ("seed", 1.5, "seed"),
    ("total_steps", 0, "total_steps must be a positive integer"),
    ("batch_size", -1, "batch_size must be a positive integer"),
    ("buffer_size", "big", "buffer_size must be a positive integer"),
    ("eval_every", 0, "eval_every"),
    ("eval_episodes", 0, "eval_episodes"),
    ("checkpoint_every", -5, "checkpoint_every"),
    ("keep_checkpoints", 0, "keep_checkpoints"),
    ("log_every", True, "log_every"),
    ("learning_starts", -1, "learning_starts"),
    ("learning_starts", 20_001, "must not exceed total_steps"),
    ("num_threads", -2, "num_threads"),
    ("gamma", 1.5, "gamma must be in"),
    ("tau", -0.1, "tau must be in"),
    ("actor_lr", 0, "actor_lr must be a positive number"),
    ("critic_lr", float("nan"), "critic_lr"),
    ("alpha_lr", "fast", "alpha_lr"),
    ("initial_alpha", -1.0, "initial_alpha"),
    ("reward_scale", float("inf"), "reward_scale"),
    ("hidden_sizes", [], "hidden_sizes"),
    ("hidden_sizes", [256, 0], "hidden_sizes"),
    ("target_entropy", "auto", "target_entropy"),
    ("learn_alpha", 1, "learn_alpha"),
    ("jit_compile", "yes", "jit_compile"),
])
def test_bad_values_are_refused_naming_the_entry(key, value, message):
    cfg = _default()
    cfg[key] = value
    with pytest.raises(UserError, match=message):
        config.validate_config(cfg)


def test_batch_larger_than_buffer_is_refused():
    cfg = _default()
    cfg.update(batch_size=512, buffer_size=256)
    with pytest.raises(UserError, match="must not exceed buffer_size"):
        config.validate_config(cfg)


def test_unknown_entries_are_refused_with_a_suggestion():
    cfg = _default()
    cfg["learning_rate"] = 1e-3
    with pytest.raises(UserError, match="unknown config entry 'learning_rate'"):
        config.validate_config(cfg)


def test_the_run_config_has_exactly_the_config_entries_and_carries_them_unchanged():
    assert set(config.RunConfig.__dataclass_fields__) == config.known_entries()
    checked = config.run_config(seed=3, hidden_sizes=(32, 16), env_kwargs={"a": 1})
    assert checked.seed == 3 and checked.hidden_sizes == [32, 16] and checked.env_kwargs == {"a": 1}
    assert checked.to_dict() == {**_default(), "seed": 3, "hidden_sizes": [32, 16], "env_kwargs": {"a": 1}}
    with pytest.raises(UserError, match="batch_size must be a positive integer"):
        config.run_config(batch_size=0)
