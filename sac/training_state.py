"""The whole training state of a run, as plain data: what `resume=runs/<id>` continues from.

Saved every `checkpoint_every` steps, at the end, and when the run is stopped by SIGTERM/SIGINT,
as runs/<id>/checkpoints/state-<step>.pkl (format: sac/checkpoint.py). It holds:
  agent      actor, critics, target critics, the three Adam optimizers' step counts and moments,
             log(alpha), and the counters that key the update and acting noise (sac/agent.py);
  replay     the stored transitions, the final-observation side table and its free rows, and the
             sampler's generator state (sac/replay.py);
  loop       the step, the update-schedule remainder, the episodes' returns and lengths, the latest
             update metrics, and the actions already sampled for the current observations;
  envs       each training env's episode start (the generator state its reset drew from) and the
             warm-up action sampler's generator: the env's own simulator state is not saved, so an
             episode under way restarts from that same initial state;
  metrics    everything this run directory logged up to the step (sac/metrics.py): the run's
             metrics.json and TensorBoard files are rewritten to exactly this on resume.
The evaluation env needs nothing: every evaluation resets it with the same seed.
"""
from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

from sac import checkpoint
from sac.loop import LoopState


def capture(*, config: dict[str, Any], agent: Any, buffer: Any, envs: gym.vector.VectorEnv, loop_state: LoopState,
            metrics_record: dict[str, Any], observation_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "format": checkpoint.STATE_FORMAT,
        "version": checkpoint.VERSION,
        "step": int(loop_state.step),
        "config": json.loads(json.dumps(config)),
        "observation_shape": [int(d) for d in observation_shape],
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
