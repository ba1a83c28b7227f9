"""The training loop: act, store, update, evaluate, log, checkpoint (paper, Algorithm 1).

It receives everything it works with as arguments; `sac/train.py` builds them from the config.
Steps are counted in transitions: with `num_envs` environments stepped together, each iteration
adds `num_envs` transitions.
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
    """When each phase happens, in environment steps (transitions)."""

    total_steps: int
    learning_starts: int
    batch_size: int
    eval_every: int
    checkpoint_every: int
    log_every: int
    train_every: int = 1  # env steps between update rounds
    gradient_steps: int = 1  # updates per round: gradient_steps / train_every updates per transition

    def is_due(self, previous_step: int, step: int, every: int) -> bool:
        """True when (previous_step, step] holds a multiple of `every`, or the last step (once)."""
        return step // every > previous_step // every or (step >= self.total_steps > previous_step)


def _as_obs(obs: np.ndarray, num_envs: int) -> np.ndarray:
    return np.asarray(obs, np.float32).reshape(num_envs, -1)


def evaluate(agent: SACAgent, envs: gym.vector.VectorEnv, seed: int) -> np.ndarray:
    """Returns of one episode per env of the deterministic policy (the squashed mean), all envs
    stepped together so that each step is one batched policy call.

    Every evaluation resets with the same seed (env i gets seed + i), so each point of the learning
    curve is measured from the same initial states.
    """
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    returns, done = np.zeros(n), np.zeros(n, bool)
    while not done.all():
        actions = agent.act(_as_obs(obs, n), deterministic=True)
        obs, reward, terminated, truncated, _ = envs.step(actions)
        returns += np.where(done, 0.0, reward)  # an env that finished was reset: ignore its new episode
        done |= np.logical_or(terminated, truncated)
    return returns


def train_loop(*, envs: gym.vector.VectorEnv, eval_envs: gym.vector.VectorEnv, agent: SACAgent, buffer: ReplayBuffer,
               schedule: Schedule, seeds: RunSeeds, logger: MetricsLogger,
               save_checkpoint: Callable[[int], None]) -> None:
    """`envs` and `eval_envs` (one env per evaluation episode) are vector envs with autoreset_mode
    SAME_STEP (see sac.envs.make_vector_env)."""
    n = envs.num_envs
    envs.action_space.seed(seeds.action_space)
    obs = _as_obs(envs.reset(seed=seeds.env)[0], n)
    episode_return, episode_length = np.zeros(n), np.zeros(n, int)
    update_metrics = None
    actions = None  # the policy's actions for `obs`, when the previous step's fused call computed them
    pending = 0  # transitions collected after learning_starts and not yet paid for by an update round
    step, window_start, window_step = 0, time.perf_counter(), 0

    while step < schedule.total_steps:
        previous_step, step = step, step + n

        # 1. Act: uniform-random actions until learning starts, then sample the current policy.
        if step <= schedule.learning_starts:
            actions = envs.action_space.sample()
        elif actions is None:  # the first policy step, or one after a step without updates
            actions = agent.act(obs)

        # 2. Step the envs and store the transitions. A time-limit end (truncated) is kept apart
        #    from a true end (terminated): only the latter stops bootstrapping. At an episode's end
        #    the vector env has already reset that env; its last observation is in final_obs.
        next_obs, reward, terminated, truncated, info = envs.step(actions)
        next_obs = _as_obs(next_obs, n)
        ended = np.logical_or(terminated, truncated)
        stored_next = next_obs
        if ended.any():
            stored_next = next_obs.copy()
            for i in np.flatnonzero(ended):
                stored_next[i] = np.asarray(info["final_obs"][i], np.float32).reshape(-1)
        buffer.add_batch(obs, actions, reward, stored_next, terminated, truncated)
        episode_return += reward
        episode_length += 1
        for i in np.flatnonzero(ended):
            logger.scalars({"train/episode_return": episode_return[i], "train/episode_length": episode_length[i]},
                           step)
            episode_return[i], episode_length[i] = 0.0, 0
        obs = next_obs

        # 3. Learn: `gradient_steps` updates every `train_every` steps once the random warm-up is
        #    over (by default one update per step). All updates due now run in one compiled call,
        #    which then samples the next actions from the updated policy: what a separate act call at
        #    the top of the next step would do, without a second call's fixed cost.
        actions = None
        if step > schedule.learning_starts:
            pending += step - max(previous_step, schedule.learning_starts)
            rounds, pending = divmod(pending, schedule.train_every)
            if rounds > 0:
                k = rounds * schedule.gradient_steps
                first_update = update_metrics is None
                update_metrics, actions = agent.train_and_act(buffer.sample_stack(k, schedule.batch_size), obs)
                if first_update:
                    logger.note("first_update_time", time.time())  # start-up cost, read by benchmarks/speed.py

        # 4. Evaluate the deterministic policy on its own env.
        if schedule.is_due(previous_step, step, schedule.eval_every):
            returns = evaluate(agent, eval_envs, seeds.eval_env)
            logger.scalars({"eval/return_mean": returns.mean(), "eval/return_min": returns.min(),
                            "eval/return_max": returns.max(), "eval/return_std": returns.std()}, step)

        # 5. Log losses, temperature, entropy, Q and speed; print progress.
        if schedule.is_due(previous_step, step, schedule.log_every):
            if update_metrics is not None:
                logger.scalars({name: value.numpy() for name, value in update_metrics.items()}, step)
            now = time.perf_counter()
            steps_per_second = (step - window_step) / (now - window_start)
            window_start, window_step = now, step
            logger.scalar("train/steps_per_second", steps_per_second, step)
            logger.progress(step, steps_per_second)

        # 6. Checkpoint the policy.
        if schedule.is_due(previous_step, step, schedule.checkpoint_every):
            save_checkpoint(step)
    logger.flush()
