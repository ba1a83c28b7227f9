"""`python -m sac.train with [named_config ...] [key=value ...]`: train SAC and record the run.

This is the edge where the config enters: it is checked here (before TensorFlow is imported, so a
bad value fails in about a second), then every part is built with explicit arguments and handed to
the training loop in sac/loop.py. Each run gets runs/<id>/ with config.json, run.json, metrics.json,
cout.txt, TensorBoard event files and checkpoints/.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.observers import FileStorageObserver

from sac import config as config_module
from sac.envs import check_env_config
from sac.errors import UserError

# Capture printed output through Python (not a `tee` subprocess): the progress lines land in cout.txt.
SETTINGS.CAPTURE_MODE = "sys"

ex = Experiment("sac")
config_module.register(ex)


@ex.config_hook
def _check_before_anything_starts(config: dict[str, Any], command_name: str, logger: Any) -> dict:
    """Runs after the config is assembled, before Sacred creates the run directory."""
    if command_name == "main":
        config_module.validate_config(config)
        check_env_config(config["env_id"], config["env_kwargs"])
    return {}


def _run_directory(run: Any) -> Path:
    for observer in run.observers:
        if isinstance(observer, FileStorageObserver):
            return Path(observer.dir)
    raise UserError("sac.train writes its run into runs/<id>/; run it without --unobserved")


def _configure_tensorflow(num_threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if num_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)


@ex.main
def main(_config: dict[str, Any], _run: Any) -> dict[str, float]:
    cfg = dict(_config)
    run_dir = _run_directory(_run)
    _configure_tensorflow(cfg["num_threads"])

    import numpy as np
    import tensorflow as tf

    from sac import checkpoint
    from sac.agent import SACAgent, SACSettings, default_target_entropy
    from sac.envs import make_vector_env, observation_dim
    from sac.loop import Schedule, train_loop
    from sac.metrics import MetricsLogger
    from sac.replay import ReplayBuffer
    from sac.seeding import RunSeeds

    seed = cfg["seed"]
    seeds = RunSeeds.from_seed(seed)
    np.random.seed(seed)  # nothing here draws from the global generators; seeded for user code
    tf.random.set_seed(seed)

    # Environments: num_envs to train on, one per evaluation episode (seeded apart inside the loop).
    envs = make_vector_env(cfg["env_id"], cfg["env_kwargs"], cfg["num_envs"])
    eval_envs = make_vector_env(cfg["env_id"], cfg["env_kwargs"], cfg["eval_episodes"])
    observation_space = envs.single_observation_space
    obs_dim = observation_dim(observation_space)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    action_dim = low.shape[0]

    target_entropy = cfg["target_entropy"]
    if target_entropy is None:
        target_entropy = default_target_entropy(action_dim)
    _run.info["target_entropy"] = float(target_entropy)
    settings = SACSettings(
        gamma=cfg["gamma"], tau=cfg["tau"], reward_scale=cfg["reward_scale"], target_entropy=float(target_entropy),
        learn_alpha=cfg["learn_alpha"], initial_alpha=cfg["initial_alpha"], actor_lr=cfg["actor_lr"],
        critic_lr=cfg["critic_lr"], alpha_lr=cfg["alpha_lr"],
    )
    agent = SACAgent(obs_dim, low, high, cfg["hidden_sizes"], settings, seed=seeds.agent,
                     jit_compile=cfg["jit_compile"])
    # No larger than the run needs: a buffer that never wraps keeps every transition sampleable.
    buffer = ReplayBuffer(min(cfg["buffer_size"], cfg["total_steps"] + cfg["num_envs"]), obs_dim, action_dim,
                          seed=seeds.replay, num_streams=cfg["num_envs"])
    logger = MetricsLogger(_run, run_dir, cfg["total_steps"])
    schedule = Schedule(
        total_steps=cfg["total_steps"], learning_starts=cfg["learning_starts"], batch_size=cfg["batch_size"],
        eval_every=cfg["eval_every"],
        checkpoint_every=cfg["checkpoint_every"], log_every=cfg["log_every"], train_every=cfg["train_every"],
        gradient_steps=cfg["gradient_steps"],
    )

    def save_checkpoint(step: int) -> None:
        payload = checkpoint.policy_payload(
            step=step, config=cfg, observation_shape=observation_space.shape, action_low=low,
            action_high=high, hidden_sizes=cfg["hidden_sizes"], actor_weights=agent.actor.get_weights(),
            critic_weights=agent.critic.get_weights())
        checkpoint.save_checkpoint(run_dir / "checkpoints", payload, keep=cfg["keep_checkpoints"])

    print(f"sac: training {cfg['env_id']} for {cfg['total_steps']} steps (seed {seed}); run directory {run_dir}",
          flush=True)
    try:
        train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule, seeds=seeds,
                   logger=logger, save_checkpoint=save_checkpoint)
    finally:
        logger.close()
        envs.close()
        eval_envs.close()
    final = {"eval/return_mean": logger.last("eval/return_mean")}
    print(f"sac: done; final eval return {final['eval/return_mean']:.1f}; run directory {run_dir}", flush=True)
    return final


if __name__ == "__main__":
    ex.observers.append(FileStorageObserver(os.path.join(os.getcwd(), "runs")))
    ex.run_commandline()
