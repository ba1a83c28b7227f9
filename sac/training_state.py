"""The whole training state of a run, as plain data: what `resume=runs/<id>` continues from.

Saved every `checkpoint_every` steps, at the end, and when the run is stopped by SIGTERM/SIGINT,
as runs/<id>/checkpoints/state-<step>.pkl (format: sac/checkpoint.py). It holds:
  target_entropy  the resolved entropy target (a resume keeps it, sac/resume.py);
  agent      actor, critics, target critics, the three Adam optimizers' step counts and moments,
             log(alpha), and the counters that key the update and acting noise (sac/agent.py);
  replay     the stored transitions, the final-observation side table and its free rows, and the
             sampler's generator state (sac/replay.py);
  loop       the step, the update-schedule remainder, the episodes' returns and lengths, the latest
             update metrics, the actions already sampled for the current observations, and a
             recurrent policy's acting state (previous actions, recurrent state, first-step flags);
  envs       each training env's episode start (the generator state its reset drew from) and the
             warm-up action sampler's generator: the env's own simulator state is not saved, so an
             episode under way restarts from that same initial state;
  metrics    everything this run directory logged up to the step (sac/metrics.py): the run's
             metrics.json and TensorBoard files are rewritten to exactly this on resume.
The evaluation env needs nothing: every evaluation resets it with the same seed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from sac import checkpoint
from sac.errors import UserError
from sac.loop import LoopState, NonFiniteError


def capture(*, config: dict[str, Any], agent: Any, buffer: Any, envs: gym.vector.VectorEnv, loop_state: LoopState,
            metrics_record: dict[str, Any], observation_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "format": checkpoint.STATE_FORMAT,
        "version": checkpoint.VERSION,
        "step": int(loop_state.step),
        "config": json.loads(json.dumps(config)),
        "observation_shape": [int(d) for d in observation_shape],
        # The entropy target the run trains with, resolved (nats, the density in the env's units): a
        # resume keeps it even where the config says None and the default rule has changed since.
        "target_entropy": float(agent.settings.target_entropy),
        "agent": agent.get_state(),
        "replay": buffer.get_state(),
        "loop": loop_state.to_plain(),
        "envs": {"episode_starts": [env.episode_start for env in envs.envs],
                 "action_space_rng": envs.action_space.np_random.bit_generator.state},
        "metrics": metrics_record,
    }


def restore(payload: dict[str, Any], *, agent: Any, buffer: Any, envs: gym.vector.VectorEnv) -> LoopState:
    """Load a captured state into freshly built parts; ValueError if a part does not fit them.
    The caller then resets `envs` (unseeded) and hands the LoopState to train_loop."""
    agent.set_state(payload["agent"])
    buffer.set_state(payload["replay"])
    starts = payload["envs"]["episode_starts"]
    if len(starts) != envs.num_envs:
        raise ValueError(f"the state has {len(starts)} training envs; this run has {envs.num_envs}")
    for env, start in zip(envs.envs, starts):
        env.restart_episode(start)
    envs.action_space.np_random.bit_generator.state = payload["envs"]["action_space_rng"]
    return LoopState.from_plain(payload["loop"])


class CheckpointWriter:
    """Saves a run's checkpoint at a step: the policy (model-<step>.pkl, sac/policy.py) and the
    training state (state-<step>.pkl). The training loop calls it as save_checkpoint(step, loop_state).

    - No checkpoint holding NaN or inf is ever written: the agent's variables are checked first
      (NonFiniteError naming them).
    - Both files are written (each atomically) before older ones are pruned, so a write that fails
      (a full disk, a file-size limit) leaves every earlier file as it was; it stops the run with a
      UserError that names the newest intact training state.
    - `last_state` is the newest training state on disk (or None), for the run's fault messages.
    """

    def __init__(self, directory: Path, *, config: dict[str, Any], policy_spec: Any, agent: Any, buffer: Any,
                 envs: gym.vector.VectorEnv, logger: Any, keep_policies: int, keep_states: int,
                 last_state: Path | None = None, num_workers: int = 1) -> None:
        """`config` is the run's config, kept in both files as a record; `policy_spec`
        (sac.policy.PolicySpec) describes the policy file's network and env."""
        self.directory = Path(directory)
        self.last_state = last_state
        self._config, self._agent, self._buffer, self._envs, self._logger = config, agent, buffer, envs, logger
        self._policy_spec = policy_spec
        self._keep = {"model": keep_policies, "state": keep_states}  # keep_policies=0: no policy file
        self._num_workers = num_workers

    def __call__(self, step: int, loop_state: LoopState) -> None:
        from sac.policy import policy_payload

        bad = self._agent.nonfinite_variables()
        if bad:
            raise NonFiniteError(step, bad[:3] + (["..."] if len(bad) > 3 else []))
        policy = policy_payload(step=step, spec=self._policy_spec, config=self._config,
                                actor_weights=self._agent.actor.get_weights(),
                                critic_weights=self._agent.critic.get_weights())
        state = capture(config=self._config, agent=self._agent, buffer=self._buffer, envs=self._envs,
                        loop_state=loop_state, metrics_record=self._logger.record(),
                        observation_shape=self._policy_spec.observation_shape)
        state["num_workers"] = self._num_workers
        try:
            if self._keep["model"] > 0:
                checkpoint.write_checkpoint(self.directory, policy, "model")
            state_path = checkpoint.write_checkpoint(self.directory, state, "state")
        except OSError as exc:
            previous = (f"the previous training state {self.last_state} is intact" if self.last_state
                        else "no earlier training state exists")
            raise UserError(f"could not write the checkpoint of step {step} in {self.directory}: "
                            f"{exc.strerror or exc}; {previous}; the run stopped") from None
        self.last_state = state_path
        for kind, keep in self._keep.items():
            if keep > 0:
                checkpoint.prune_checkpoints(self.directory, keep, kind)
        self._logger.flush()  # TensorBoard has the events up to this checkpoint on disk
