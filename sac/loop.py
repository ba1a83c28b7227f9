"""The training loop: act, store, update, evaluate, log, checkpoint (paper, Algorithm 1).

It receives everything it works with as arguments; sac/builder.py builds them from the config.
Steps are counted in transitions: with `num_envs` environments stepped together, each iteration
adds `num_envs` transitions.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np

from sac.agent import SACAgent
from sac.metrics import MetricsLogger
from sac.policy import Policy
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
    sequence_length: int = 0  # > 0: the agent learns from sequences of this many steps (recurrent networks)
    burn_in: int = 0  # steps of a mid-episode sequence that only warm the recurrent state up
    video_every: int = 0  # > 0: record an evaluation episode this often (and at the end)

    def is_due(self, previous_step: int, step: int, every: int) -> bool:
        """True when (previous_step, step] holds a multiple of `every`, or the last step (once)."""
        return step // every > previous_step // every or (step >= self.total_steps > previous_step)


class EnvFault(Exception):
    """The environment raised, or returned a non-finite number, during `phase` at env step `step`."""

    def __init__(self, step: int, phase: str, cause: BaseException) -> None:
        super().__init__(f"{phase} at step {step}: {type(cause).__name__}: {cause}")
        self.step, self.phase, self.cause = step, phase, cause


class NonFiniteError(Exception):
    """An update produced NaN or inf in the named quantities at env step `step`."""

    def __init__(self, step: int, quantities: list[str]) -> None:
        super().__init__(f"non-finite {', '.join(quantities)} at step {step}")
        self.step, self.quantities = step, quantities


@dataclass
class LoopState:
    """Where the loop is: enough, with the agent, the replay buffer and the env generators, to go on
    exactly as if it had not stopped (sac/training_state.py saves it)."""

    step: int = 0
    pending: int = 0  # transitions after learning_starts not yet paid for by an update round
    episode_return: np.ndarray = field(default_factory=lambda: np.zeros(1))
    episode_length: np.ndarray = field(default_factory=lambda: np.zeros(1, int))
    update_metrics: dict[str, float] | None = None  # the latest update's metrics (logged every log_every)
    actions: np.ndarray | None = None  # the policy's actions for the current observations, if computed
    # A recurrent policy's acting state (Policy.act_with_state) after the observations so far, and which envs'
    # current observation starts an episode. Empty / None for a feed-forward policy.
    acting_state: list[np.ndarray] = field(default_factory=list)
    first: np.ndarray | None = None

    def to_plain(self) -> dict[str, Any]:
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        plain["acting_state"] = list(self.acting_state)
        return plain

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> "LoopState":
        """Read `to_plain`'s output; a ValueError if a field is missing (states of format 2 written
        before recurrent policies, sac before d2c2d0c, lack the acting state: resume refuses them)."""
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"its loop state lacks {', '.join(missing)} (written by a sac version older than "
                             "recurrent policies, which this version does not resume)")
        return cls(**{f.name: _FROM_PLAIN[f.name](data[f.name]) for f in fields(cls)})


# How each LoopState field is read back from plain data (the keys are checked against the fields).
_FROM_PLAIN: dict[str, Callable[[Any], Any]] = {
    "step": int, "pending": int,
    "episode_return": lambda v: np.asarray(v, float), "episode_length": lambda v: np.asarray(v, int),
    "update_metrics": lambda v: v, "actions": lambda v: v,
    "acting_state": lambda v: [np.asarray(a, np.float32) for a in v],
    "first": lambda v: None if v is None else np.asarray(v, bool),
}
assert set(_FROM_PLAIN) == {f.name for f in fields(LoopState)}


def _env_call(step: int, phase: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        raise EnvFault(step, phase, exc) from exc


def _check_env_output(step: int, next_obs: np.ndarray, reward: np.ndarray) -> None:
    if not (np.isfinite(next_obs).all() and np.isfinite(reward).all()):
        what = "reward" if not np.isfinite(reward).all() else "observation"
        raise EnvFault(step, "step", ValueError(f"the env returned a non-finite {what}"))


def _as_obs(obs: np.ndarray, num_envs: int) -> np.ndarray:
    return np.asarray(obs, np.float32).reshape(num_envs, -1)


def evaluate(policy: Policy, envs: gym.vector.VectorEnv, seed: int, step: int = 0) -> np.ndarray:
    """Returns of one episode per env of the deterministic policy (the squashed mean), all envs
    stepped together so that each step is one batched policy call.

    Every evaluation resets with the same seed (env i gets seed + i), so each point of the learning
    curve is measured from the same initial states. A recurrent policy's state starts afresh.
    """
    n = envs.num_envs
    obs, _ = _env_call(step, "evaluation reset", lambda: envs.reset(seed=seed))
    policy.reset()
    returns, done = np.zeros(n), np.zeros(n, bool)
    while not done.all():
        actions = policy.act(_as_obs(obs, n))
        obs, reward, terminated, truncated, _ = _env_call(step, "evaluation step", lambda a=actions: envs.step(a))
        returns += np.where(done, 0.0, reward)  # an env that finished was reset: ignore its new episode
        ended = np.logical_or(terminated, truncated)
        policy.reset(np.flatnonzero(ended))
        done |= ended
    return returns


def train_loop(*, envs: gym.vector.VectorEnv, eval_envs: gym.vector.VectorEnv, agent: SACAgent, buffer: ReplayBuffer,
               schedule: Schedule, seeds: RunSeeds, logger: MetricsLogger,
               save_checkpoint: Callable[[int, LoopState], None], resume: LoopState | None = None,
               stop_requested: Callable[[], bool] = lambda: False, num_workers: int = 1,
               video: Callable[[Policy, int], Any] | None = None) -> LoopState:
    """Run to schedule.total_steps, or until stop_requested() turns true (then the state is saved at
    the step reached; it is asked once per iteration, so that under multi_worker it can be a
    collective all workers answer alike). With `num_workers` workers (multi_worker), each collects
    with its own envs and steps count the transitions of all of them. `envs` and `eval_envs` (one env per evaluation episode) are vector envs with
    autoreset_mode SAME_STEP (see sac.envs.make_vector_env).

    With `resume` (a LoopState saved by an earlier run, whose agent, replay buffer and env generators
    the caller has restored), the loop goes on from that step: the warm-up is not repeated, and the
    episodes under way restart from the same initial states (a reset with the saved generators).
    Returns the final LoopState."""
    n = envs.num_envs
    per_iteration = n * num_workers  # transitions collected per iteration by all workers
    if resume is None:
        envs.action_space.seed(seeds.action_space)
        obs = _as_obs(_env_call(0, "reset", lambda: envs.reset(seed=seeds.env))[0], n)
        state = LoopState(episode_return=np.zeros(n), episode_length=np.zeros(n, int))
        state.acting_state, state.first = agent.policy.initial_state(n), np.ones(n, bool)
    else:
        state = resume
        obs = _as_obs(_env_call(state.step, "reset", lambda: envs.reset())[0], n)
        if state.episode_length.any():
            # Episodes were under way: they start again from their first state, so their stored
            # last transitions end there (truncated), and the actions computed for them are stale.
            buffer.mark_last_truncated()
            state.episode_return[:], state.episode_length[:] = 0.0, 0
            state.actions = None
            state.first = np.ones(n, bool)
    step, pending, actions = state.step, state.pending, state.actions
    acting_state, first = state.acting_state, state.first
    episode_return, episode_length, update_metrics = state.episode_return, state.episode_length, state.update_metrics
    first_update_logged = update_metrics is not None
    window_start, window_step = time.perf_counter(), step

    def snapshot() -> LoopState:
        return LoopState(step=step, pending=pending, episode_return=episode_return.copy(),
                         episode_length=episode_length.copy(), update_metrics=update_metrics, actions=actions,
                         acting_state=[a.copy() for a in acting_state], first=first.copy())

    def sample_batches(k: int) -> dict[str, np.ndarray]:
        if agent.sequences:
            return buffer.sample_sequence_stack(k, schedule.batch_size, schedule.sequence_length, schedule.burn_in)
        return buffer.sample_stack(k, schedule.batch_size)

    while step < schedule.total_steps:
        previous_step, step = step, step + per_iteration

        # 1. Act: uniform-random actions until learning starts, then sample the current policy. A
        #    recurrent policy's state follows every observation, the warm-up's too, and takes the
        #    actions the envs were given as its previous actions.
        if step <= schedule.learning_starts:
            actions = envs.action_space.sample()
            if agent.policy.recurrent:
                _, acting_state = agent.policy.act_with_state(obs, acting_state, first)
                acting_state[0] = np.asarray(actions, np.float32)
        elif actions is None:  # the first policy step, or one after a step without updates
            actions, acting_state = agent.policy.act_with_state(obs, acting_state, first, stochastic=True)

        # 2. Step the envs and store the transitions. A time-limit end (truncated) is kept apart
        #    from a true end (terminated): only the latter stops bootstrapping. At an episode's end
        #    the vector env has already reset that env; its last observation is in final_obs.
        next_obs, reward, terminated, truncated, info = _env_call(step, "step", lambda a=actions: envs.step(a))
        next_obs = _as_obs(next_obs, n)
        _check_env_output(step, next_obs, reward)
        ended = np.logical_or(terminated, truncated)
        first = ended  # those envs were reset: their next observation starts an episode
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
                metrics, actions, acting_state = agent.train_and_act(sample_batches(k), obs, acting_state, first)
                update_metrics = {name: float(value) for name, value in metrics.items()}
                # A NaN or inf stops the run here, before anything is logged or saved from it.
                bad = [name for name, value in update_metrics.items() if not np.isfinite(value)]
                if bad:
                    raise NonFiniteError(step, bad)
                if not first_update_logged:
                    first_update_logged = True
                    logger.note("first_update_time", time.time())  # start-up cost, read by benchmarks/speed.py

        # 4. Evaluate the deterministic policy on its own env.
        if schedule.is_due(previous_step, step, schedule.eval_every):
            returns = evaluate(agent.policy, eval_envs, seeds.eval_env, step)
            logger.scalars({"eval/return_mean": returns.mean(), "eval/return_min": returns.min(),
                            "eval/return_max": returns.max(), "eval/return_std": returns.std()}, step)
        if video is not None and schedule.video_every and schedule.is_due(previous_step, step, schedule.video_every):
            filming = time.perf_counter()
            video(agent.policy, step)  # one evaluation episode on film (sac/rendering.py); draws no random numbers
            window_start += time.perf_counter() - filming  # steps/s counts training, not filming

        # 5. Log losses, temperature, entropy, Q and speed; print progress.
        if schedule.is_due(previous_step, step, schedule.log_every):
            if update_metrics is not None:
                logger.scalars(update_metrics, step)
            now = time.perf_counter()
            steps_per_second = (step - window_step) / (now - window_start)
            window_start, window_step = now, step
            logger.scalar("train/steps_per_second", steps_per_second, step)
            logger.progress(step, steps_per_second)

        # 6. Checkpoint the policy and the whole training state; on a stop request, save and return.
        stop = stop_requested()
        if schedule.is_due(previous_step, step, schedule.checkpoint_every) or stop:
            save_checkpoint(step, snapshot())
            if stop:
                break
    logger.flush()
    return snapshot()
