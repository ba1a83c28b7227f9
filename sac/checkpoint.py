"""Checkpoint files, written by training and read by `sac.play`, resume, the tests and users.

Two kinds live in `runs/<id>/checkpoints/`:
  model-<step>.pkl   the policy (and critics): small, what `sac.play` and `load_policy` read;
  state-<step>.pkl   the whole training state (sac/training_state.py): what `resume=` reads.

A file is a pickle of plain data only (dicts, lists, strings, numbers, bytes, bytearrays): numpy
arrays are stored as (dtype, shape, raw bytes). Reading uses an unpickler that resolves no global
at all, so a file crafted to run code when unpickled is refused before anything in it executes.
After the pickle comes a trailer (a marker, the pickle's length and its CRC-32), so a file that was
cut short or damaged is detected before it is used. A file is written to a temporary name, flushed
to disk and renamed, so a crash (even `kill -9`) never leaves a half-written file under a
checkpoint's name, and a failed write (a full disk) leaves the older files as they were.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sac.errors import UserError

FORMAT = "sac-policy"
STATE_FORMAT = "sac-training-state"
VERSION = 2
_NAMES = {"model": re.compile(r"^model-(\d+)\.pkl$"), "state": re.compile(r"^state-(\d+)\.pkl$")}
_TRAILER = struct.Struct("<8sQI")  # marker, pickle length, CRC-32 of the pickle
_MARKER = b"SAC-END1"


# --- Plain-data encoding ----------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays cannot be stored in a checkpoint")
        # A PickleBuffer is written straight from the array's memory (no copy of a large replay
        # buffer) and read back as a bytearray: a built-in type, no global needed.
        data = value if value.flags.c_contiguous else value.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
        return {"__ndarray__": True, "dtype": data.dtype.str, "shape": list(data.shape),
                "data": pickle.PickleBuffer(data.reshape(-1).view(np.uint8) if data.size else b"")}
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
            data = value["data"]
            array = np.frombuffer(data, dtype=dtype).reshape(value["shape"])
            return array if isinstance(data, bytearray) else array.copy()  # bytes are read-only
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

def checkpoint_path(directory: Path, step: int, kind: str = "model") -> Path:
    return Path(directory) / f"{kind}-{step}.pkl"


class _ChecksummingWriter:
    """A file wrapper that keeps the length and CRC-32 of everything written through it."""

    def __init__(self, file: Any) -> None:
        self._file, self.length, self.crc = file, 0, 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.length += view.nbytes
        return self._file.write(view)


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_via_temporary(path: Path, write: Callable[[Any], None]) -> None:
    """Call write(file) on a temporary file beside `path`, flush it to disk, then rename it to `path`:
    `path` is either absent, its old content, or complete. On any error (a full disk, say) the
    temporary file is removed and the error propagates; `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see _write_via_temporary)."""
    _write_via_temporary(path, lambda f: f.write(data))


def write_payload(path: Path, payload: dict[str, Any]) -> None:
    """Pickle `payload` (plain data and numpy arrays) to `path` atomically, then the trailer."""

    def write(f: Any) -> None:
        writer = _ChecksummingWriter(f)
        pickle.Pickler(writer, protocol=5).dump(_encode(payload))
        f.write(_TRAILER.pack(_MARKER, writer.length, writer.crc))

    _write_via_temporary(path, write)


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


def save_checkpoint(directory: Path, payload: dict[str, Any], keep: int, kind: str = "model") -> Path:
    """Write <kind>-<step>.pkl atomically, then delete all but the newest `keep` of that kind.
    Older files are deleted only after the new one is complete on disk."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, payload["step"], kind)
    write_payload(path, payload)
    for old in list_checkpoints(directory, kind)[:-keep]:
        old.unlink(missing_ok=True)
    return path


# --- Reading -----------------------------------------------------------------------------------------

def list_checkpoints(directory: Path, kind: str = "model") -> list[Path]:
    """<kind>-<step>.pkl files in `directory` (kind "model" or "state"), oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAMES[kind].match(p.name))]
    return [p for _, p in sorted(found)]


def read_payload(path: Path) -> dict[str, Any]:
    """Read a checkpoint file: check its trailer, then unpickle it without resolving any global.
    Any problem is a UserError naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            trailer = None
            if size >= _TRAILER.size:
                f.seek(size - _TRAILER.size)
                marker, length, crc = _TRAILER.unpack(f.read(_TRAILER.size))
                if marker == _MARKER and length == size - _TRAILER.size:
                    trailer = crc
            f.seek(0)
            if trailer is None:
                # No intact trailer: cut short, damaged, or not ours. Read it anyway with the
                # plain-data unpickler (it runs nothing) only to say which.
                try:
                    _PlainDataUnpickler(f).load()
                except _ForbiddenGlobal as exc:
                    raise UserError(f"refusing checkpoint {path}: {exc}") from None
                except Exception:
                    raise UserError(f"checkpoint {path} is damaged or truncated (its end marker is missing)") from None
                raise UserError(f"{path} is not a sac checkpoint file (it has no sac end marker)")
            crc = 0
            remaining = size - _TRAILER.size
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 24))
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                remaining -= len(chunk)
            if remaining or crc != trailer:
                raise UserError(f"checkpoint {path} is damaged (its checksum does not match)")
            f.seek(0)
            raw = _PlainDataUnpickler(f).load()
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except _ForbiddenGlobal as exc:
        raise UserError(f"refusing checkpoint {path}: {exc}") from None
    except UserError:
        raise
    except Exception as exc:  # corrupt bytes raise many different errors
        raise UserError(f"checkpoint {path} is damaged or truncated ({type(exc).__name__})") from None
    try:
        return _decode(raw)
    except Exception as exc:
        raise UserError(f"checkpoint {path} is damaged ({type(exc).__name__}: {exc})") from None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def load_newest_state(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest training state in a checkpoints/ directory that reads back whole, or None if
    there is none. Damaged or half-written ones are skipped with a warning (the previous one is used)."""
    for path in reversed(list_checkpoints(directory, "state")):
        try:
            payload = read_payload(path)
        except UserError as exc:
            warn(f"{exc}; trying the previous training state")
            continue
        if payload.get("format") != STATE_FORMAT or payload.get("version") != VERSION:
            warn(f"{path} is not a training state of this sac version; trying the previous one")
            continue
        return path, payload
    return None


def _policy_checkpoints(run_dir: Path) -> list[Path]:
    """The policy checkpoints of a run directory (or of a checkpoints/ directory itself), oldest
    first; a UserError when there is none."""
    run_dir = Path(run_dir)
    candidates = list_checkpoints(run_dir / "checkpoints") or list_checkpoints(run_dir)
    if not candidates:
        raise UserError(f"no checkpoint (checkpoints/model-<step>.pkl) in {run_dir}")
    return candidates


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of a run directory (or of a checkpoints/ directory itself)."""
    return _policy_checkpoints(run_dir)[-1]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; any problem is a UserError naming the file."""
    path = Path(path)
    payload = read_payload(path)
    if isinstance(payload, dict) and payload.get("format") == STATE_FORMAT:
        raise UserError(f"{path} is a training state (for resume=); the policy of that step is in "
                        f"{Path(path).with_name(Path(path).name.replace('state-', 'model-'))}")
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
    if not path.is_dir():
        return Policy(load_checkpoint(path))
    candidates = _policy_checkpoints(path)
    for older in reversed(candidates[1:]):  # the newest that reads back whole; damaged ones are skipped
        try:
            return Policy(load_checkpoint(older))
        except UserError as exc:
            warn(f"{exc}; trying the previous checkpoint")
    return Policy(load_checkpoint(candidates[0]))
