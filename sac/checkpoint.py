"""Policy checkpoints: `runs/<id>/checkpoints/model-<step>.pkl`, written by training, read by
`sac.play`, the tests and users (`load_policy`).

A checkpoint is a pickle of plain data only (dicts, lists, strings, numbers, bytes): numpy arrays
are stored as (dtype, shape, raw bytes). Reading uses an unpickler that resolves no global at all,
so a file crafted to run code when unpickled is refused before anything in it executes. A file is
written to a temporary name, flushed to disk and renamed, so a crash never leaves a half-written
file under a checkpoint's name.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sac.errors import UserError

FORMAT = "sac-policy"
VERSION = 1
_NAME = re.compile(r"^model-(\d+)\.pkl$")


# --- Plain-data encoding ----------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": True, "dtype": value.dtype.str, "shape": list(value.shape),
                "data": np.ascontiguousarray(value).tobytes()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("__ndarray__") is True:
            dtype = np.dtype(value["dtype"])
            if dtype.hasobject:
                raise ValueError("object arrays are not allowed")
            return np.frombuffer(value["data"], dtype=dtype).reshape(value["shape"]).copy()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _PlainDataUnpickler(pickle.Unpickler):
    """Resolves no module attribute: only pickle's built-in types (dict, list, str, bytes, numbers,
    tuples, None, booleans) can be read, so no callable can ever be invoked by a load."""

    def find_class(self, module: str, name: str) -> Any:
        raise _ForbiddenGlobal(f"it asks to load {module}.{name}, and a checkpoint holds plain data only")


# --- Writing -----------------------------------------------------------------------------------------

def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"model-{step}.pkl"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` is either absent, its old content, or complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def policy_payload(*, step: int, config: dict[str, Any], observation_shape: Sequence[int],
                   action_low: np.ndarray, action_high: np.ndarray, hidden_sizes: Sequence[int],
                   actor_weights: list[np.ndarray], critic_weights: list[np.ndarray]) -> dict[str, Any]:
    """Everything needed to rebuild and run the policy, as plain data."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "env_id": config["env_id"],
        "env_kwargs": json.loads(json.dumps(config["env_kwargs"])),
        "config": json.loads(json.dumps(config)),
        "observation_shape": [int(d) for d in observation_shape],
        "action_low": np.asarray(action_low, np.float32),
        "action_high": np.asarray(action_high, np.float32),
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "actor": [np.asarray(w) for w in actor_weights],
        "critic": [np.asarray(w) for w in critic_weights],
    }


def save_checkpoint(directory: Path, payload: dict[str, Any], keep: int) -> Path:
    """Write model-<step>.pkl atomically, then delete all but the newest `keep` checkpoints."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, payload["step"])
    write_atomically(path, pickle.dumps(_encode(payload), protocol=pickle.HIGHEST_PROTOCOL))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


# --- Reading -----------------------------------------------------------------------------------------

def list_checkpoints(directory: Path) -> list[Path]:
    """model-<step>.pkl files in `directory`, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of a run directory (or of a checkpoints/ directory itself)."""
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir / "checkpoints") or list_checkpoints(run_dir)
    if not candidates:
        raise UserError(f"no checkpoint (checkpoints/model-<step>.pkl) in {run_dir}")
    return candidates[-1]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; any problem is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        payload = _decode(_PlainDataUnpickler(io.BytesIO(raw)).load())
    except _ForbiddenGlobal as exc:
        raise UserError(f"refusing checkpoint {path}: {exc}") from None
    except Exception as exc:  # truncated or corrupt bytes raise many different errors
        raise UserError(f"checkpoint {path} is damaged or truncated ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a sac policy checkpoint")
    if payload.get("version") != VERSION:
        raise UserError(f"checkpoint {path} has format version {payload.get('version')}; this sac reads {VERSION}")
    required = ("step", "env_id", "observation_shape", "action_low", "action_high", "hidden_sizes", "actor")
    missing = [key for key in required if key not in payload]
    if missing:
        raise UserError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return payload


class Policy:
    """A trained policy rebuilt from a checkpoint. `act(obs)` takes one observation or a batch."""

    def __init__(self, payload: dict[str, Any]) -> None:
        from sac.networks import build_actor  # TensorFlow is imported only when a policy is built

        self.step = payload["step"]
        self.env_id = payload["env_id"]
        self.env_kwargs = payload.get("env_kwargs", {})
        self.observation_shape = tuple(payload["observation_shape"])
        self.obs_dim = int(np.prod(self.observation_shape))
        self.action_low = payload["action_low"]
        self.action_high = payload["action_high"]
        self.actor = build_actor(self.obs_dim, self.action_low, self.action_high, payload["hidden_sizes"])
        try:
            self.actor.set_weights(payload["actor"])
        except ValueError as exc:
            raise UserError(f"checkpoint weights do not fit its own network description: {exc}") from None
        self._rng = np.random.default_rng(0)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The squashed-mean action (or a sampled one) for one observation [O] or a batch [B, O]."""
        import tensorflow as tf

        obs = np.asarray(obs, np.float32)
        single = obs.ndim == len(self.observation_shape) and obs.shape == self.observation_shape
        batch = obs.reshape(1 if single else obs.shape[0], self.obs_dim)
        if deterministic:
            action = self.actor.mode(batch)
        else:
            noise = self._rng.standard_normal((batch.shape[0], self.actor.action_dim)).astype(np.float32)
            action, _ = self.actor.sample(batch, tf.constant(noise))
        action = np.asarray(action)
        return action[0] if single else action


def load_policy(path: Path) -> Policy:
    """The Python API: `load_policy("runs/1")` or `load_policy("runs/1/checkpoints/model-20000.pkl")`."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    return Policy(load_checkpoint(path))
