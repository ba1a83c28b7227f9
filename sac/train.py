"""`python -m sac.train with [named_config ...] [key=value ...]`: train SAC and record the run.

This is the edge where the config enters, and the only module that reads it: it is checked here
(before TensorFlow is imported, so a bad value fails in about a second), turned into a RunConfig,
and handed to the builder (sac/builder.py), whose parts the training loop (sac/loop.py) runs. Each
run gets runs/<id>/ with config.json, run.json, metrics.json, cout.txt, info.json, TensorBoard
event files and checkpoints/ (policies and training states).

Stopping and resuming (docs/resume.md): SIGTERM or SIGINT (Ctrl-C) lets the
current step finish, saves the training state, and exits with status 128 + the signal number (143,
130); after a first signal, SIGINT (a second Ctrl-C) stops at once (the newest complete checkpoint stays
intact), while further SIGTERMs are ignored (the save goes on).
`with resume=runs/<id>` continues a stopped run (sac/resume.py).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.observers import FileStorageObserver
from sacred.utils import SacredError, SacredInterrupt

from sac import config as config_module
from sac import distribute
from sac import resume as resume_module
from sac import runfiles
from sac.envs import check_env_config, has_display
from sac.errors import UserError
from sac.kinds import any_recurrent

# Capture printed output through Python (not a `tee` subprocess): the progress lines land in cout.txt.
SETTINGS.CAPTURE_MODE = "sys"
# Sacred shows INFO records of every library; with MUJOCO_GL=egl set (headless servers), importing
# mujoco makes PyOpenGL log that its optional accelerator is missing. Not worth a user's line.
logging.getLogger("OpenGL").setLevel(logging.WARNING)


def _printed_as(label: str) -> Callable[[type], type]:
    """Make Sacred print the exception as `<label>: <message>`, like any command-line tool's line.
    Sacred prints a SacredError without traceback through traceback.format_exception_only, which
    writes `<module>.<class name>: <message>` and leaves the module out only for builtins: so the
    class is given that module and `label` as its name (the Python name stays for the code)."""

    def rename(cls: type) -> type:
        cls.__module__ = "builtins"
        cls.__qualname__ = cls.__name__ = label
        return cls

    return rename


@_printed_as("error")
class CommandLineError(SacredError):
    """A UserError on its way out through Sacred: printed as `error: <message>`, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_traceback=False)


@_printed_as("stopped")
class Stopped(SacredInterrupt, SacredError):
    """The run was stopped by a signal after saving its training state (not a failure of the run):
    printed as `stopped: <message>`."""

    def __init__(self, message: str, signum: int) -> None:
        SacredError.__init__(self, message, print_traceback=False)
        self.signum = signum


@dataclass
class Invocation:
    """What this process's one `python -m sac.train` command resolved to, before Sacred starts the
    run: set by SacExperiment.run, read by main() and at exit. (Sacred calls main() with the config
    and the run only, so what the command line decided besides the config is kept here.)"""

    resume_plan: resume_module.ResumePlan | None = None
    cluster: distribute.Cluster = field(default_factory=distribute.Cluster)  # place among the workers
    exit_status: int | None = None  # set when a signal stopped the run: 128 + its number


invocation = Invocation()


class SacExperiment(Experiment):
    """Sacred's Experiment, with resume= resolved from what the user typed, before the run starts.

    Sacred parses the command line and calls run(); a resume request is checked there (before a
    run directory exists), and the run then starts with the stopped run's own config. The plan
    (paths and a step) goes to `invocation` for main()."""

    def run(self, command_name: str | None = None, config_updates: dict | None = None,
            named_configs: Any = (), info: dict | None = None, meta_info: dict | None = None,
            options: dict | None = None) -> Any:
        config_updates = dict(config_updates or {})
        training = command_name in (None, self.default_command)
        try:
            if training and config_updates.get("resume") is not None:
                invocation.resume_plan, invocation.cluster = _plan_resume(config_updates, list(named_configs))
            else:
                invocation.cluster = _cluster(config_updates.get("strategy"))
        except UserError as exc:
            raise CommandLineError(str(exc)) from None
        if training and not invocation.cluster.is_chief:
            # Only the chief of a multi_worker run writes runs/<id>/ (the others keep their training
            # states in the chief's run directory, sac/builder.py).
            self.observers = [o for o in self.observers if not isinstance(o, FileStorageObserver)]
        if invocation.resume_plan is not None:
            if invocation.resume_plan.finished:
                plan = invocation.resume_plan
                print(f"sac: {plan.run_dir} already finished: its training state is at step {plan.step} of "
                      f"total_steps={plan.step}. Nothing to do (add total_steps=N to train it further).", flush=True)
                raise SystemExit(0)
            config_updates, named_configs = invocation.resume_plan.config_updates, ()
        # Sacred refuses keys added inside a dict entry (env_kwargs={"size": 3}) as "not used anywhere";
        # validate_config refuses unknown entries itself (with a suggestion), so that check is off.
        options = {**(options or {}), "--force": True}
        run = super().run(command_name, config_updates, named_configs, info, meta_info, options)
        if command_name == "print_config":
            print(_resolved_target_entropy(run.config))
        return run


def _resolved_target_entropy(cfg: dict[str, Any]) -> str:
    """print_config's last line: the entropy target the run would train with (it needs the env's box)."""
    from sac.envs import make_env

    try:
        env = make_env(cfg["env_id"], cfg["env_kwargs"])
        low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
        env.close()
    except Exception as exc:  # print_config shows the config even for an env that cannot be made
        return f"target_entropy: not resolved ({cfg['env_id']!r} could not be made: {type(exc).__name__}: {exc})"
    given = cfg["target_entropy"]
    value = config_module.resolve_target_entropy(given, low, high)
    return f"resolved for {cfg['env_id']}: " + config_module.describe_target_entropy(value, given, low, high)


def _plan_resume(cli_updates: dict[str, Any], named_configs: list[str]
                 ) -> tuple[resume_module.ResumePlan, distribute.Cluster]:
    # Only the resume entry is checked before the stopped run's config is known.
    config_module.validate_config({**config_module.defaults(), "resume": cli_updates["resume"]})
    run_dir = Path(cli_updates["resume"])
    try:
        old_config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        old_config = None
    strategy = cli_updates.get("strategy", (old_config or {}).get("strategy"))
    cluster = _cluster(strategy)
    return resume_module.plan(run_dir, old_config, cli_updates, named_configs, worker_index=cluster.worker_index,
                              num_workers=cluster.num_workers), cluster


ex = SacExperiment("sac")
config_module.register(ex)


@ex.config_hook
def _check_before_anything_starts(config: dict[str, Any], command_name: str, logger: Any) -> dict:
    """Runs after the config is assembled, before Sacred creates the run directory."""
    if command_name == "main":
        try:
            config_module.validate_config(config)
            check_env_config(config["env_id"], config["env_kwargs"])
            if config["render"] and not has_display():
                raise UserError("render=True needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); "
                                "record videos without one with video_every=N")
            distribute.check_request(strategy=config["strategy"], cpu_replicas=config["cpu_replicas"],
                                     tpu_address=config["tpu_address"], batch_size=config["batch_size"],
                                     cluster=_cluster(config["strategy"]))
        except UserError as exc:
            raise CommandLineError(str(exc)) from None
    return {}


def _cluster(strategy: str | None) -> distribute.Cluster:
    """This process's place among the workers: TF_CONFIG for multi_worker, else a single worker."""
    if strategy != "multi_worker":
        return distribute.Cluster()
    return distribute.read_cluster(os.environ.get("TF_CONFIG"))


def _run_directory(run: Any) -> Path:
    for observer in run.observers:
        if isinstance(observer, FileStorageObserver):
            return Path(observer.dir)
    raise UserError("sac.train writes its run into runs/<id>/; run it without --unobserved")


def _display(path: Path | None) -> str:
    """A path relative to the working directory when it is below it (runs/3/...)."""
    if path is None:
        return "None"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@ex.main
def main(_config: dict[str, Any], _run: Any) -> dict[str, float]:
    try:
        return _train(config_module.checked(_config), _run)
    except UserError as exc:
        raise CommandLineError(str(exc)) from None


def _train(cfg: config_module.RunConfig, sacred_run: Any) -> dict[str, float]:
    """Check, build, resume, loop, report."""
    cluster = invocation.cluster
    run_dir = _run_directory(sacred_run) if cluster.is_chief else None
    if run_dir is not None:
        runfiles.record_process(run_dir)

    # SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C): finish the step, save, exit non-zero.
    # Installed first, so a signal during start-up also ends in a saved state at the first step.
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, the newest complete checkpoint stays
        # A repeated SIGTERM changes nothing: a scheduler that signals a whole job (Slurm, systemd)
        # reaches both a grid and its runs, and the grid passes its own SIGTERM on; the save goes on.
        received.append(signum)

    previous_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    from sac.builder import build_run, configure_tensorflow

    configure_tensorflow(cfg.num_threads, cfg.cpu_replicas)
    from sac import checkpoint
    from sac.loop import EnvFault, NonFiniteError

    parts = build_run(cfg, run_dir=run_dir, metrics_sink=sacred_run, cluster=cluster)
    for signum in previous_handlers:  # again: connecting a multi_worker cluster (gRPC) replaces the handlers
        signal.signal(signum, on_signal)
    target_entropy = parts.agent.settings.target_entropy  # resolved by the builder
    sacred_run.info["target_entropy"] = target_entropy
    box = parts.envs.single_action_space
    target_text = config_module.describe_target_entropy(target_entropy, cfg.target_entropy, box.low.tolist(),
                                                        box.high.tolist(), kept=cfg.resume is not None)
    sacred_run.info["target_entropy_explained"] = target_text
    # The run directory all workers report: the chief's (the others keep their states under it).
    shared_run = run_dir if run_dir is not None else parts.checkpoints.directory.parent.parent
    resume_command = f"`python -m sac.train with resume={_display(shared_run)}`" + (
        " on every worker" if cluster.num_workers > 1 else "")

    resume_state = None
    plan = invocation.resume_plan
    if cfg.resume is not None:
        if plan is None or str(plan.run_dir) != str(Path(cfg.resume)):
            raise UserError("resume= works from the command line: python -m sac.train with resume=runs/<id>")
        chief_step = parts.replication.from_chief(plan.step)  # one collective, which every worker makes once
        if chief_step != plan.step:
            raise UserError(f"resume: this worker's newest training state is at step {plan.step}, the chief's at "
                            f"step {chief_step}; the workers cannot go on together")
        payload = checkpoint.read_state_file(plan.state_path)
        resume_state = parts.restore(payload, plan.state_path)
        if run_dir is not None:
            link = resume_module.mark_resumed(plan, run_dir, {name: [tuple(e) for e in entries] for name, entries
                                                              in payload["metrics"]["history"].items()})
            sacred_run.info["resumed_from"] = link
        del payload  # the arrays are in place: free their memory
        print(f"sac: resuming {plan.run_dir} from step {plan.step} ({_display(plan.state_path)})", flush=True)
    else:
        where = f"run directory {run_dir}" if run_dir is not None else (
            f"{cluster.describe(cluster.worker_index)} of {_display(shared_run)}")
        networks = ""
        if any_recurrent(cfg.actor_network, cfg.critic_network):
            networks = (f" with {cfg.actor_network} actor and {cfg.critic_network} critic (batches of "
                        f"{cfg.batch_size} sequences of {cfg.sequence_length} steps)")
        print(f"sac: training {cfg.env_id} for {cfg.total_steps} steps (seed {cfg.seed}){networks}; {where}",
              flush=True)
    print(f"sac: {target_text}", flush=True)

    def after_fault() -> str:
        last = parts.checkpoints.last_state
        if last is None:
            return "no training state had been saved yet"
        return f"the training state of the last checkpoint ({_display(last)}) is intact: resume with {resume_command}"

    try:
        final_state = parts.train(resume=resume_state, stop_requested=lambda: bool(received))
    except EnvFault as exc:
        raise UserError(f"env {cfg.env_id} failed during {exc.phase} at step {exc.step}: "
                        f"{type(exc.cause).__name__}: {exc.cause}; {after_fault()}") from None
    except NonFiniteError as exc:
        raise UserError(f"non-finite {', '.join(exc.quantities)} at step {exc.step}; the run stopped without "
                        f"saving anything from this step; {after_fault()}") from None
    except Exception as exc:
        lost = cluster.lost_worker(exc)
        if lost is None:
            raise
        raise UserError(f"lost {lost}: it stopped answering (or did not within worker_timeout={cfg.worker_timeout:g} s)"
                        f", so this worker stopped too; {after_fault()}") from None
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        parts.close()
    if final_state.step < cfg.total_steps:  # stopped by a signal here, or by one another worker received
        signum = received[0] if received else signal.SIGTERM
        name = signal.Signals(signum).name if received else "a stop request of another worker"
        invocation.exit_status = 128 + signum
        raise Stopped(f"{name} at step {final_state.step}: training state saved in "
                      f"{_display(parts.checkpoints.last_state)}; continue with {resume_command}", signum)
    final = {"eval/return_mean": parts.logger.last("eval/return_mean")}
    print(f"sac: done; final eval return {final['eval/return_mean']:.1f}; run directory {shared_run}", flush=True)
    return final


if __name__ == "__main__":
    ex.observers.append(FileStorageObserver(os.path.join(os.getcwd(), "runs")))
    try:
        ex.run_commandline()
    except SystemExit as exc:
        if invocation.exit_status is not None and exc.code == 1:
            sys.exit(invocation.exit_status)
        raise
    except KeyboardInterrupt:
        print("sac: interrupted and stopped at once (a second Ctrl-C, or a signal before training started); "
              "the newest complete checkpoint, if any, is intact", file=sys.stderr)
        sys.exit(130)
