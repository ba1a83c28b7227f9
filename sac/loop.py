"""The training loop: act, store, update, evaluate, log, checkpoint (paper, Algorithm 1).

It receives everything it works with as arguments; `sac/train.py` builds them from the config.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sac.agent import SACAgent
from sac.metrics import MetricsLogger
from sac.replay import ReplayBuffer
from sac.seeding import RunSeeds


@dataclass(frozen=True)
class Schedule:
    """When each phase happens, in environment steps."""

    total_steps: int
    learning_starts: int
    batch_size: int
    eval_every: int
    eval_episodes: int
    checkpoint_every: int
    log_every: int

    def is_due(self, step: int, every: int) -> bool:
        """Every `every` steps, and at the last step (once, even where the two coincide)."""
        return step % every == 0 or step == self.total_steps


def _as_obs(obs: np.ndarray) -> np.ndarray:
    return np.asarray(obs, np.float32).reshape(-1)


def evaluate(agent: SACAgent, env: gym.Env, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes of the deterministic policy (the squashed mean).

    Every evaluation reseeds the env with the same seed, so each point of the learning curve is
    measured from the same initial states.
    """
    returns = np.zeros(episodes)
    obs, _ = env.reset(seed=seed)
    for episode in range(episodes):
        if episode > 0:
            obs, _ = env.reset()
        done = False
        while not done:
            action = agent.act(_as_obs(obs)[None], deterministic=True)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += float(reward)
            done = terminated or truncated
    return returns


def train_loop(*, env: gym.Env, eval_env: gym.Env, agent: SACAgent, buffer: ReplayBuffer,
               schedule: Schedule, seeds: RunSeeds, logger: MetricsLogger,
               save_checkpoint: Callable[[int], None]) -> None:
    env.action_space.seed(seeds.action_space)
    obs = _as_obs(env.reset(seed=seeds.env)[0])
    episode_return, episode_length = 0.0, 0
    update_metrics = None
    window_start, window_step = time.perf_counter(), 0

    for step in range(1, schedule.total_steps + 1):
        # 1. Act: uniform-random actions until learning starts, then sample the current policy.
        if step <= schedule.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(obs[None])[0]

        # 2. Step the env and store the transition. A time-limit end (truncated) is kept apart
        #    from a true end (terminated): only the latter stops bootstrapping.
        next_obs, reward, terminated, truncated, _ = env.step(action)
        next_obs = _as_obs(next_obs)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        episode_return += float(reward)
        episode_length += 1
        if terminated or truncated:
            logger.scalars({"train/episode_return": episode_return, "train/episode_length": episode_length}, step)
            obs = _as_obs(env.reset()[0])
            episode_return, episode_length = 0.0, 0
        else:
            obs = next_obs

        # 3. Learn: one gradient step per environment step once the random warm-up is over.
        if step > schedule.learning_starts:
            update_metrics = agent.update(buffer.sample(schedule.batch_size))
            if step == schedule.learning_starts + 1:
                logger.note("first_update_time", time.time())  # start-up cost, read by benchmarks/speed.py

        # 4. Evaluate the deterministic policy on its own env.
        if schedule.is_due(step, schedule.eval_every):
            returns = evaluate(agent, eval_env, schedule.eval_episodes, seeds.eval_env)
            logger.scalars({"eval/return_mean": returns.mean(), "eval/return_min": returns.min(),
                            "eval/return_max": returns.max(), "eval/return_std": returns.std()}, step)

        # 5. Log losses, temperature, entropy, Q and speed; print progress.
        if schedule.is_due(step, schedule.log_every):
            if update_metrics is not None:
                logger.scalars({name: value.numpy() for name, value in update_metrics.items()}, step)
            now = time.perf_counter()
            steps_per_second = (step - window_step) / (now - window_start)
            window_start, window_step = now, step
            logger.scalar("train/steps_per_second", steps_per_second, step)
            logger.progress(step, steps_per_second)

        # 6. Checkpoint the policy.
        if schedule.is_due(step, schedule.checkpoint_every):
            save_checkpoint(step)
    logger.flush()
