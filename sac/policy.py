"""The policy: the one way to act with an actor, in training, evaluation, `sac.play` and the Python API.

    from sac.policy import load_policy
    policy = load_policy("runs/1")                # newest intact model-<step>.pkl of a run, or a file
    action = policy.act(observation)             # the squashed mean (the default everywhere)
    action = policy.act(observation, stochastic=True)   # a sample, from the policy's own seeded stream

A recurrent policy (actor_network lstm or gru) carries its state from step to step: `act` keeps it
per row of the batch (one per env of a vector env), and `reset()` / `reset(rows)` marks the rows
whose next observation starts an episode:

    policy.reset()                               # every row starts an episode (a new batch size does too)
    action = policy.act(obs)                     # state advanced by this observation
    policy.reset(np.flatnonzero(terminated | truncated))   # those envs were reset

`act_with_state(obs, state, first)` is the same without the policy keeping anything (the training loop's way).

A policy is an actor network plus a noise stream: stateless Gaussian noise keyed by (key, counter),
the counter a variable that advances once per sampling call. The training agent owns one (its key
derived from the run's seed, its counter part of the training state); a loaded policy gets its key
from `seed`, so `sac.play --stochastic --seed S` plays the same actions every time.

Policy checkpoints (model-<step>.pkl, format in sac/checkpoint.py) hold plain data only: the
config, the spaces and the actor's and critics' weights as raw arrays. Nothing here imports Sacred.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sac import checkpoint
from sac.noise import seed_pair, standard_normal_draws
from sac.errors import UserError
from sac.kinds import NetworkKind

FORMAT = "sac-policy"
_REQUIRED = ("step", "env_id", "observation_shape", "action_low", "action_high", "hidden_sizes", "actor")


@dataclass(frozen=True)
class PolicySpec:
    """What rebuilds a run's policy besides its weights: the env and the actor's description
    (sac/builder.py makes it from the config; model-<step>.pkl holds it as plain data)."""

    env_id: str
    env_kwargs: dict[str, Any]
    observation_shape: tuple[int, ...]
    action_low: np.ndarray
    action_high: np.ndarray
    hidden_sizes: tuple[int, ...]
    actor_network: NetworkKind = "mlp"
    rnn_units: int = 0


def policy_payload(*, step: int, spec: PolicySpec, config: dict[str, Any], actor_weights: list[np.ndarray],
                   critic_weights: list[np.ndarray]) -> dict[str, Any]:
    """Everything needed to rebuild and run the policy, as plain data (model-<step>.pkl). `config`
    is the run's whole config, kept as a record (nothing here reads it)."""
    return {
        "format": FORMAT,
        "version": checkpoint.VERSION,
        "step": int(step),
        "env_id": spec.env_id,
        "env_kwargs": json.loads(json.dumps(spec.env_kwargs)),
        "config": json.loads(json.dumps(config)),
        "observation_shape": [int(d) for d in spec.observation_shape],
        "action_low": np.asarray(spec.action_low, np.float32),
        "action_high": np.asarray(spec.action_high, np.float32),
        "hidden_sizes": [int(h) for h in spec.hidden_sizes],
        "actor_network": str(spec.actor_network),  # mlp | lstm | gru (files without it: mlp)
        "rnn_units": int(spec.rnn_units),
        "actor": [np.asarray(w) for w in actor_weights],
        "critic": [np.asarray(w) for w in critic_weights],
    }


def read_policy_file(path: Path) -> dict[str, Any]:
    """Read and check a policy checkpoint file; any problem is a UserError naming the file."""
    path = Path(path)
    payload = checkpoint.read_payload(path)
    if isinstance(payload, dict) and payload.get("format") == checkpoint.STATE_FORMAT:
        raise UserError(f"{path} is a training state (for resume=); the policy of that step is in "
                        f"{path.with_name(path.name.replace('state-', 'model-'))}")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a sac policy checkpoint")
    if payload.get("version") != checkpoint.VERSION:
        raise UserError(f"checkpoint {path} has format version {payload.get('version')}; "
                        f"this sac reads {checkpoint.VERSION}")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise UserError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return payload


def find_policy_file(path: Path) -> tuple[Path, dict[str, Any]]:
    """A policy file and its checked payload: `path` itself, or, for a run directory (or its
    checkpoints/ directory), the newest policy that reads back whole; damaged newer ones are
    skipped with a warning. A UserError when nothing usable is there."""
    path = Path(path)
    if path.is_dir():
        directory = path / "checkpoints" if checkpoint.list_checkpoints(path / "checkpoints") else path
        if not checkpoint.list_checkpoints(directory):
            raise UserError(f"no checkpoint (checkpoints/model-<step>.pkl) in {path}")
        found = checkpoint.load_newest(directory, "model", read_policy_file)
        if found is None:
            raise UserError(f"no policy checkpoint in {path} reads back whole")
        return found
    if not path.exists():
        raise UserError(f"{path} does not exist (expected a run directory or a model-<step>.pkl file)")
    return path, read_policy_file(path)


class Policy:
    """Acts with an actor (sac.networks.Actor). `act` takes one flat observation [O] or a batch [B, O]
    (observations of other shapes are flattened as sac.envs.make_env flattens them; a leading
    dimension of 1 counts as a batch of one). A recurrent actor's state is kept per row (see above).

    Loaded from a checkpoint, it also carries `step`, `env_id`, `env_kwargs`, `observation_shape`,
    `action_low` and `action_high`; a policy owned by a training agent has those as None.
    """

    def __init__(self, actor: Any, obs_dim: int, seed: int, jit_compile: bool = False,
                 xla_noise: bool | None = None) -> None:
        import tensorflow as tf

        self.actor = actor
        self.obs_dim = int(obs_dim)
        # The noise stream: variables, so that a training state carries it (sac/agent.py).
        self.noise_key = tf.Variable(int(seed), dtype=tf.int64, trainable=False, name="act_key")
        self.noise_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="act_counter")
        self._draw = standard_normal_draws(jit_compile if xla_noise is None else xla_noise)
        self.recurrent = bool(getattr(actor, "recurrent", False))
        self._sample_fn = tf.function(self.sample, jit_compile=jit_compile)
        self._mode_fn = tf.function(actor.mode, jit_compile=jit_compile)
        self._step_fns = {True: tf.function(self.sample_step, jit_compile=jit_compile),
                          False: tf.function(self.mode_step, jit_compile=jit_compile)}
        self._state: list[np.ndarray] | None = None  # act()'s own acting state, and its rows' first flags
        self._first: np.ndarray | None = None
        self.step: int | None = None
        self.env_id: str | None = None
        self.env_kwargs: dict[str, Any] | None = None
        self.observation_shape: tuple[int, ...] | None = None
        self.action_low: np.ndarray | None = None
        self.action_high: np.ndarray | None = None

    def sample(self, obs: Any) -> Any:
        """Graph code: sampled actions [B, A] for observations [B, O]; the noise counter advances."""
        action, _ = self.actor.sample(obs, self._next_noise(obs.shape[0]))
        return action

    def _next_noise(self, rows: int) -> Any:
        """Graph code: the next [rows, A] draws of the policy's noise stream; the counter advances."""
        noise = self._draw((rows, self.actor.action_dim), seed_pair(self.noise_key, self.noise_counter))
        self.noise_counter.assign_add(1)
        return noise

    # --- Recurrent acting: graph code over an explicit state --------------------------------------
    def _features(self, obs: Any, first: Any, prev_action: Any, state: Sequence[Any]) -> tuple[Any, list]:
        """One step of the actor's encoder; rows flagged `first` start from the zero state and a
        zero previous action (an episode's start, as in the sequences it was trained on)."""
        keep = 1.0 - first[:, None]
        features, state = self.actor.encode(obs[:, None], (prev_action * keep)[:, None], [s * keep for s in state])
        return features[:, 0], state

    def sample_step(self, obs: Any, first: Any, prev_action: Any, *state: Any) -> tuple[Any, list]:
        """Graph code: sampled actions [N, A] and the next recurrent state; the noise counter advances."""
        features, state = self._features(obs, first, prev_action, state)
        action, _ = self.actor.sample(features, self._next_noise(obs.shape[0]))
        return action, state

    def mode_step(self, obs: Any, first: Any, prev_action: Any, *state: Any) -> tuple[Any, list]:
        features, state = self._features(obs, first, prev_action, state)
        return self.actor.mode(features), state

    def initial_state(self, rows: int) -> list[np.ndarray]:
        """The acting state (act_with_state) of `rows` envs: [previous actions [rows, A], recurrent state...] (empty
        for a feed-forward policy). Its values only matter where a row is not `first`."""
        if not self.recurrent:
            return []
        return [np.zeros((rows, self.actor.action_dim), np.float32)] + [
            np.zeros(tuple(s.shape), np.float32) for s in self.actor.initial_state(rows)]

    def act_with_state(self, obs: np.ndarray, state: list[np.ndarray], first: np.ndarray,
                       stochastic: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Actions for a batch of observations [N, O] and the acting state after them; `first` [N]
        flags the rows whose observation starts an episode. The new state's previous actions are
        the returned ones: replace them if the env is given other actions (the training warm-up)."""
        obs = np.asarray(obs, np.float32).reshape(-1, self.obs_dim)
        if not self.recurrent:
            return (self._sample_fn(obs) if stochastic else self._mode_fn(obs)).numpy(), []
        action, new_state = self._step_fns[bool(stochastic)](obs, np.asarray(first, np.float32), *state)
        action = action.numpy()
        return action, [action] + [np.asarray(s) for s in new_state]

    def reset(self, rows: Sequence[int] | np.ndarray | None = None) -> None:
        """Mark every row (or the given rows) of `act`'s batch as starting an episode."""
        if self._first is None:
            return
        if rows is None:
            self._first[:] = True
        else:
            self._first[np.asarray(rows, int)] = True

    def act(self, obs: np.ndarray, stochastic: bool = False) -> np.ndarray:
        """The squashed-mean action (or, with stochastic=True, a sampled one) for one observation or
        a batch, in the env's action units; a recurrent policy advances its state (see `reset`)."""
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == 1 or (obs.size == self.obs_dim and obs.shape[0] != 1)
        batch = obs.reshape(1 if single else obs.shape[0], self.obs_dim)
        if self.recurrent:
            if self._state is None or len(self._first) != len(batch):
                self._state, self._first = self.initial_state(len(batch)), np.ones(len(batch), bool)
            action, self._state = self.act_with_state(batch, self._state, self._first, stochastic)
            self._first[:] = False
        else:
            action = (self._sample_fn(batch) if stochastic else self._mode_fn(batch)).numpy()
        return action[0] if single else action


def policy_from_payload(payload: dict[str, Any], seed: int = 0) -> Policy:
    """Rebuild the policy a checked payload (read_policy_file) describes."""
    from sac.networks import build_actor  # TensorFlow is imported only when a policy is built

    observation_shape = tuple(int(d) for d in payload["observation_shape"])
    obs_dim = int(np.prod(observation_shape))
    actor = build_actor(obs_dim, payload["action_low"], payload["action_high"], payload["hidden_sizes"],
                        network=payload.get("actor_network", "mlp"), rnn_units=int(payload.get("rnn_units", 0)))
    try:
        actor.set_weights(payload["actor"])
    except ValueError as exc:
        raise UserError(f"checkpoint weights do not fit its own network description: {exc}") from None
    policy = Policy(actor, obs_dim, seed=seed)
    policy.step, policy.env_id = int(payload["step"]), payload["env_id"]
    policy.env_kwargs = payload.get("env_kwargs") or {}
    policy.observation_shape = observation_shape
    policy.action_low, policy.action_high = payload["action_low"], payload["action_high"]
    return policy


def load_policy(path: str | Path, seed: int = 0) -> Policy:
    """The Python API: `load_policy("runs/1")` (the newest intact checkpoint of a run; damaged newer
    ones are skipped with a warning) or `load_policy("runs/1/checkpoints/model-20000.pkl")`.
    `seed` keys the noise of `act(obs, stochastic=True)`."""
    _, payload = find_policy_file(Path(path))
    return policy_from_payload(payload, seed=seed)
