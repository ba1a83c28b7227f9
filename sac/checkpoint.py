"""Checkpoint files, written by training and read by `sac.play`, resume, the tests and users.

Two kinds live in `runs/<id>/checkpoints/`:
  model-<step>.pkl   the policy (and critics), sac/policy.py: what `sac.play` and `load_policy` read;
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

import os
import pickle
import re
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sac.errors import UserError
from sac.kinds import CheckpointKind

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

def checkpoint_path(directory: Path, step: int, kind: CheckpointKind = "model") -> Path:
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


def write_checkpoint(directory: Path, payload: dict[str, Any], kind: CheckpointKind = "model") -> Path:
    """Write <kind>-<step>.pkl atomically (nothing else in `directory` changes)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, payload["step"], kind)
    write_payload(path, payload)
    return path


def prune_checkpoints(directory: Path, keep: int, kind: CheckpointKind = "model") -> None:
    """Delete all but the newest `keep` files of a kind."""
    for old in list_checkpoints(directory, kind)[:-keep]:
        old.unlink(missing_ok=True)


# --- Reading -----------------------------------------------------------------------------------------

def list_checkpoints(directory: Path, kind: CheckpointKind = "model") -> list[Path]:
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


def load_newest(directory: Path, kind: CheckpointKind, read: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]] | None:
    """The newest <kind>-<step>.pkl in `directory` that `read` accepts, with its payload, or None if
    there is none. Damaged or half-written ones (a UserError from `read`) are skipped with a
    warning: the previous one is used. The one fallback rule for policies and training states."""
    for path in reversed(list_checkpoints(directory, kind)):
        try:
            return path, read(path)
        except UserError as exc:
            warn(f"{exc}; trying the previous {'training state' if kind == 'state' else 'checkpoint'}")
    return None


def read_state_file(path: Path) -> dict[str, Any]:
    """Read a training state file (state-<step>.pkl) and check that this sac version wrote it."""
    payload = read_payload(path)
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT or payload.get("version") != VERSION:
        raise UserError(f"{path} is not a training state of this sac version")
    if "loop" in payload and "acting_state" not in payload["loop"]:
        # Format 2 before recurrent policies (sac before d2c2d0c) kept no acting state in the loop.
        raise UserError(f"{path} was written by a sac version older than recurrent policies (its loop state has "
                        "no acting state); this version cannot resume it")
    return payload


def load_newest_state(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest training state in a checkpoints/ directory that reads back whole (see load_newest)."""
    return load_newest(directory, "state", read_state_file)
