"""`python -m sac.train with resume=runs/<id> [total_steps=N]`: find where a stopped run can go on.

Nothing here imports TensorFlow or reads Sacred's config: sac/train.py passes in what the user typed
and the stopped run's config.json, and a resume that cannot work (no such run, no usable training
state, a config change that would make it a different experiment) is refused in about a second,
before Sacred creates a run directory. The plan names the training state; sac/train.py reads it
once the new run starts (so the state is read twice: once here to check it, once to load it).

The resumed part is a new run directory (Sacred gives each run its own) that points back:
  runs/<new>/resume.json     {"resumed_from": "runs/<old>", "state": ".../state-<step>.pkl", "step": ...}
  runs/<old>/resumed_by.json {"run_dir": "runs/<new>", "step": ...}
and the old run's metrics.json and TensorBoard files are rewritten to exactly the metrics its
training state recorded (up to the state's step), so that runs/ as a whole holds every step's
metrics once. A run resumed from a run that never saved a state of its own continues from that
run's own origin (its resume.json), and the run in between is emptied of metrics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sac import checkpoint
from sac.changeable import CHANGEABLE, CHANGEABLE_TEXT, changed_entries, fixed_entries
from sac.errors import UserError
from sac.runfiles import read_json, still_running


@dataclass(frozen=True)
class ResumePlan:
    run_dir: Path  # the run the user named
    state_path: Path  # the training state it continues from (checked: it reads back whole)
    step: int  # that state's step
    chain: tuple[Path, ...]  # run_dir, then its origins up to (and including) the run that owns the state
    config_updates: dict[str, Any]  # the stopped run's config, with the CHANGEABLE entries as given (or as it had them) and a None target_entropy resolved
    finished: bool  # the state is at total_steps already: nothing to do


def state_directory(run_dir: Path, worker_index: int = 0) -> Path:
    """Where a run keeps the training states of a worker: the chief's (and a single worker's) in
    checkpoints/, those of the other workers of a multi_worker run in workers/<index>/."""
    return Path(run_dir) / ("checkpoints" if worker_index == 0 else f"workers/{worker_index}")


def _find_state(run_dir: Path, chain: list[Path], worker_index: int) -> tuple[Path, dict[str, Any]]:
    chain.append(run_dir)
    found = checkpoint.load_newest_state(state_directory(run_dir, worker_index))
    if found is not None:
        return found
    origin = read_json(run_dir / "resume.json")
    if origin and "resumed_from" in origin and len(chain) < 1000:
        parent = Path(origin["resumed_from"])
        if parent.is_dir():
            return _find_state(parent, chain, worker_index)
    where = state_directory(Path("."), worker_index)
    raise UserError(f"{run_dir} has no usable training state ({where}/state-<step>.pkl); it was stopped "
                    "before its first checkpoint, or its states are damaged: start it again")


def plan(run_dir: Path, old_config: dict[str, Any] | None, cli_updates: dict[str, Any],
         named_configs: list[str], worker_index: int = 0, num_workers: int = 1) -> ResumePlan:
    """Check a resume request: `run_dir` (the resume= entry), the stopped run's config (its
    config.json, None if unreadable), and what the user typed after `with` besides resume=; under
    multi_worker, this worker's index and the number of workers now. Returns the plan; a UserError
    when the request cannot work."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"resume: no run directory {str(run_dir)!r}")
    if not isinstance(old_config, dict):
        raise UserError(f"resume: {run_dir} has no readable config.json; is it a sac run directory?")
    if named_configs:
        raise UserError(f"resume continues {run_dir} with its own config; drop the named config "
                        f"{named_configs[0]!r} (only {CHANGEABLE_TEXT} can change)")
    changed = changed_entries(old_config, cli_updates, lacking="changed")
    if changed:
        key = changed[0]
        raise UserError(f"resume keeps {run_dir}'s config: {key}={cli_updates[key]!r} would change it "
                        f"(it was {old_config.get(key)!r}); only {CHANGEABLE_TEXT} can change")
    pid = still_running(run_dir)
    if pid is not None:
        raise UserError(f"{run_dir} is still running (process {pid}); stop it first (SIGTERM saves its state), "
                        "then resume it")
    successor = read_json(run_dir / "resumed_by.json")
    if successor and Path(successor.get("run_dir", "")).is_dir():
        raise UserError(f"{run_dir} was already resumed as {successor['run_dir']}; resume that run instead")

    chain: list[Path] = []
    state_path, payload = _find_state(run_dir, chain, worker_index)
    if int(payload.get("num_workers", 1)) != num_workers:
        raise UserError(f"{run_dir} was trained by {payload.get('num_workers', 1)} worker(s); resume it with as many "
                        f"(this one is one of {num_workers}): each worker's replay buffer is part of the run")
    updates = fixed_entries(old_config)
    for key in CHANGEABLE:  # as given, else as the stopped run had it (runs of older versions lack some)
        if key in cli_updates or key in old_config:
            updates[key] = cli_updates[key] if key in cli_updates else old_config[key]
    updates["resume"] = str(cli_updates["resume"]) if "resume" in cli_updates else str(run_dir)
    if updates.get("target_entropy") is None:
        # The default target's rule may have changed since the run started (issue 18): the resumed
        # part trains with the target the state was trained with, written into its config. States
        # from before the target was recorded were trained with the rule of that time.
        updates["target_entropy"] = trained_target_entropy(payload)
    step = int(payload["step"])
    if step > updates["total_steps"]:
        raise UserError(f"total_steps={updates['total_steps']} is below step {step}, where {run_dir} stopped")
    state_env = payload.get("config", {}).get("env_id")
    if step < updates["total_steps"] and state_env != updates["env_id"]:
        raise UserError(f"resume: {state_path} was written for env {state_env!r}, "
                        f"but {run_dir}/config.json says {updates['env_id']!r}")
    return ResumePlan(run_dir=run_dir, state_path=state_path, step=step, chain=tuple(chain),
                      config_updates=updates, finished=step == updates["total_steps"])


def trained_target_entropy(payload: dict[str, Any]) -> float:
    """The entropy target a training state was trained with (nats, the density in the env's units)."""
    if "target_entropy" in payload:
        return float(payload["target_entropy"])
    # Written before issue 18, when the default was -dim(A)/2 for the density in the env's units,
    # whatever the box, and states did not record it.
    return -0.5 * int(payload["replay"]["action_dim"])


def mark_resumed(plan_: ResumePlan, new_run_dir: Path, recorded: dict[str, list]) -> dict[str, Any]:
    """Record the link both ways and make the stopped runs' metrics agree with the state's record
    (`recorded`: its metrics history). Returns the link written to the new run's resume.json."""
    from sac.metrics import rewrite_run_metrics

    step = plan_.step
    for run in plan_.chain:
        # The run that owns the state keeps exactly what the state recorded; runs in between (resumed
        # but stopped before their first state) logged only steps after it, which are redone now.
        history = recorded if run == plan_.chain[-1] else {}
        rewrite_run_metrics(run, {name: [tuple(e) for e in entries] for name, entries in history.items()})
    link = {"resumed_from": str(plan_.run_dir.resolve()), "state": str(plan_.state_path.resolve()), "step": step}
    checkpoint.write_atomically(new_run_dir / "resume.json", json.dumps(link, indent=2).encode())
    checkpoint.write_atomically(plan_.run_dir / "resumed_by.json", json.dumps(
        {"run_dir": str(Path(new_run_dir).resolve()), "step": step}, indent=2).encode())
    return link
