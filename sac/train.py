"""`python -m sac.train with [named_config ...] [key=value ...]`: train SAC and record the run.

This is the edge where the config enters: it is checked here (before TensorFlow is imported, so a
bad value fails in about a second), then every part is built with explicit arguments and handed to
the training loop in sac/loop.py. Each run gets runs/<id>/ with config.json, run.json, metrics.json,
cout.txt, TensorBoard event files and checkpoints/ (policies and training states).

Stopping and resuming (README "Resume after preemption"): SIGTERM or SIGINT (Ctrl-C) lets the
current step finish, saves the training state, and exits with status 128 + the signal number (143,
130); a second signal stops at once (the newest complete checkpoint stays intact).
`with resume=runs/<id>` continues a stopped run (sac/resume.py).
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.observers import FileStorageObserver
from sacred.utils import SacredError, SacredInterrupt

from sac import config as config_module
from sac import resume as resume_module
from sac.envs import check_env_config
from sac.errors import UserError

KEEP_TRAINING_STATES = 2  # the newest, and the one before it in case the newest is damaged

# Capture printed output through Python (not a `tee` subprocess): the progress lines land in cout.txt.
SETTINGS.CAPTURE_MODE = "sys"

ex = Experiment("sac")
config_module.register(ex)


class Stopped(SacredInterrupt, SacredError):
    """The run was stopped by a signal after saving its training state (not a failure of the run)."""

    def __init__(self, message: str, signum: int) -> None:
        SacredError.__init__(self, message, print_traceback=False)
        self.signum = signum


Stopped.__module__ = "builtins"
Stopped.__qualname__ = Stopped.__name__ = "stopped"
_EXIT_STATUS: dict[str, int] = {}  # set when a signal stopped the run: 128 + its number

# What the user typed after `with` (Sacred's config hook sees only the merged config): set in __main__.
_CLI: dict[str, Any] = {"updates": None, "named": None}


@ex.config_hook
def _check_before_anything_starts(config: dict[str, Any], command_name: str, logger: Any) -> dict:
    """Runs after the config is assembled, before Sacred creates the run directory."""
    if command_name != "main":
        return {}
    if config.get("resume") is not None:
        # Only the resume entry itself is checked before the stopped run's config is merged in.
        config_module.validate_config({**config, **{k: v for k, v in config_module.defaults().items()
                                                    if k != "resume"}})
        updates = resume_module.plan(config, _CLI["updates"], _CLI["named"])
        merged = {**config, **updates}
        config_module.validate_config(merged)
        check_env_config(merged["env_id"], merged["env_kwargs"])
        return updates
    config_module.validate_config(config)
    check_env_config(config["env_id"], config["env_kwargs"])
    return {}


def _run_directory(run: Any) -> Path:
    for observer in run.observers:
        if isinstance(observer, FileStorageObserver):
            return Path(observer.dir)
    raise UserError("sac.train writes its run into runs/<id>/; run it without --unobserved")


def _configure_tensorflow(num_threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if num_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)


@ex.main
def main(_config: dict[str, Any], _run: Any) -> dict[str, float]:
    cfg = dict(_config)
    run_dir = _run_directory(_run)
    resume_module.record_process(run_dir)

    # SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C): finish the step, save, exit non-zero.
    # Installed first, so a signal during start-up also ends in a saved state at the first step.
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received:
            raise KeyboardInterrupt  # a second signal: stop now, the newest complete checkpoint stays
        received.append(signum)

    previous_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    _configure_tensorflow(cfg["num_threads"])

    import numpy as np
    import tensorflow as tf

    from sac import checkpoint, training_state
    from sac.agent import SACAgent, SACSettings, default_target_entropy
    from sac.envs import make_vector_env, observation_dim
    from sac.loop import EnvFault, LoopState, NonFiniteError, Schedule, train_loop
    from sac.metrics import MetricsLogger
    from sac.replay import ReplayBuffer
    from sac.seeding import RunSeeds

    seed = cfg["seed"]
    seeds = RunSeeds.from_seed(seed)
    np.random.seed(seed)  # nothing here draws from the global generators; seeded for user code
    tf.random.set_seed(seed)

    # Environments: num_envs to train on, one per evaluation episode (seeded apart inside the loop).
    envs = make_vector_env(cfg["env_id"], cfg["env_kwargs"], cfg["num_envs"])
    eval_envs = make_vector_env(cfg["env_id"], cfg["env_kwargs"], cfg["eval_episodes"])
    observation_space = envs.single_observation_space
    obs_dim = observation_dim(observation_space)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    action_dim = low.shape[0]

    target_entropy = cfg["target_entropy"]
    if target_entropy is None:
        target_entropy = default_target_entropy(action_dim)
    _run.info["target_entropy"] = float(target_entropy)
    settings = SACSettings(
        gamma=cfg["gamma"], tau=cfg["tau"], reward_scale=cfg["reward_scale"], target_entropy=float(target_entropy),
        learn_alpha=cfg["learn_alpha"], initial_alpha=cfg["initial_alpha"], actor_lr=cfg["actor_lr"],
        critic_lr=cfg["critic_lr"], alpha_lr=cfg["alpha_lr"],
    )
    agent = SACAgent(obs_dim, low, high, cfg["hidden_sizes"], settings, seed=seeds.agent,
                     jit_compile=cfg["jit_compile"])
    # No larger than the run needs: a buffer that never wraps keeps every transition sampleable.
    buffer = ReplayBuffer(min(cfg["buffer_size"], cfg["total_steps"] + cfg["num_envs"]), obs_dim, action_dim,
                          seed=seeds.replay, num_streams=cfg["num_envs"])
    logger = MetricsLogger(_run, run_dir, cfg["total_steps"])
    schedule = Schedule(
        total_steps=cfg["total_steps"], learning_starts=cfg["learning_starts"], batch_size=cfg["batch_size"],
        eval_every=cfg["eval_every"],
        checkpoint_every=cfg["checkpoint_every"], log_every=cfg["log_every"], train_every=cfg["train_every"],
        gradient_steps=cfg["gradient_steps"],
    )

    # --- Resume: load the stopped run's state into the parts just built -------------------------------
    resume_state: LoopState | None = None
    last_state: list[Path | None] = [None]  # the newest training state on disk (for error messages)
    if cfg["resume"] is not None:
        plan = resume_module.current_plan()
        if list(plan.payload["observation_shape"]) != [int(d) for d in observation_space.shape]:
            raise UserError(f"resume: {plan.state_path} holds a policy for observations of shape "
                            f"{tuple(plan.payload['observation_shape'])}, but {cfg['env_id']} now gives "
                            f"{observation_space.shape}")
        try:
            resume_state = training_state.restore(plan.payload, agent=agent, buffer=buffer, envs=envs)
        except (ValueError, KeyError) as exc:
            raise UserError(f"resume: {plan.state_path} does not fit this run: {exc}") from None
        logger.resume_from(plan.payload["metrics"])
        link = resume_module.mark_resumed(plan, run_dir)
        plan.payload = {}  # the loaded arrays are in place: free their memory
        _run.info["resumed_from"] = link
        last_state[0] = plan.state_path
        print(f"sac: resuming {plan.run_dir} from step {link['step']} ({plan.state_path})", flush=True)

    def save_checkpoint(step: int, loop_state: LoopState) -> None:
        bad = agent.nonfinite_variables()
        if bad:  # never write a checkpoint that holds NaN or inf
            raise NonFiniteError(step, bad[:3] + (["..."] if len(bad) > 3 else []))
        policy = checkpoint.policy_payload(
            step=step, config=cfg, observation_shape=observation_space.shape, action_low=low,
            action_high=high, hidden_sizes=cfg["hidden_sizes"], actor_weights=agent.actor.get_weights(),
            critic_weights=agent.critic.get_weights())
        state = training_state.capture(
            config=cfg, agent=agent, buffer=buffer, envs=envs,
            loop_state=loop_state, metrics_record=logger.record(), observation_shape=observation_space.shape)
        directory = run_dir / "checkpoints"
        try:
            checkpoint.save_checkpoint(directory, policy, keep=cfg["keep_checkpoints"])
            last_state[0] = checkpoint.save_checkpoint(directory, state, keep=KEEP_TRAINING_STATES, kind="state")
        except OSError as exc:
            previous = (f"the previous training state {last_state[0]} is intact" if last_state[0]
                        else "no earlier training state exists")
            raise UserError(f"could not write the checkpoint of step {step} in {directory}: "
                            f"{exc.strerror or exc}; {previous}; the run stopped") from None
        logger.flush()  # TensorBoard has the events up to this checkpoint on disk

    def after_fault() -> str:
        if last_state[0] is None:
            return "no training state had been saved yet"
        return (f"the training state of the last checkpoint ({last_state[0]}) is intact: "
                f"resume with `python -m sac.train with resume={_display(run_dir)}`")

    if resume_state is None:
        print(f"sac: training {cfg['env_id']} for {cfg['total_steps']} steps (seed {seed}); run directory {run_dir}",
              flush=True)
    try:
        final_state = train_loop(envs=envs, eval_envs=eval_envs, agent=agent, buffer=buffer, schedule=schedule,
                                 seeds=seeds, logger=logger, save_checkpoint=save_checkpoint, resume=resume_state,
                                 stop_requested=lambda: bool(received))
    except EnvFault as exc:
        raise UserError(f"env {cfg['env_id']} failed during {exc.phase} at step {exc.step}: "
                        f"{type(exc.cause).__name__}: {exc.cause}; {after_fault()}") from None
    except NonFiniteError as exc:
        raise UserError(f"non-finite {', '.join(exc.quantities)} at step {exc.step}; the run stopped without "
                        f"saving anything from this step; {after_fault()}") from None
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        logger.close()
        envs.close()
        eval_envs.close()
    if received and final_state.step < cfg["total_steps"]:  # (a signal during the last step: it finished)
        name = signal.Signals(received[0]).name
        _EXIT_STATUS["code"] = 128 + received[0]
        raise Stopped(f"{name} at step {final_state.step}: training state saved in {last_state[0]}; "
                      f"continue with `python -m sac.train with resume={_display(run_dir)}`", received[0])
    final = {"eval/return_mean": logger.last("eval/return_mean")}
    print(f"sac: done; final eval return {final['eval/return_mean']:.1f}; run directory {run_dir}", flush=True)
    return final


def _display(run_dir: Path) -> str:
    """runs/<id> relative to the working directory when it is below it."""
    try:
        return str(Path(run_dir).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(run_dir)


def _remember_command_line(argv: list[str]) -> None:
    """Keep what the user typed after `with`, parsed as Sacred parses it (for resume's checks)."""
    try:
        from docopt import docopt
        from sacred.arg_parser import get_config_updates

        args = docopt(ex.get_usage()[2], [str(a) for a in argv[1:]], default_help=False)
        _CLI["updates"], _CLI["named"] = get_config_updates(args["UPDATE"])
    except (Exception, SystemExit):  # Sacred reports a malformed command line itself
        pass


if __name__ == "__main__":
    ex.observers.append(FileStorageObserver(os.path.join(os.getcwd(), "runs")))
    _remember_command_line(sys.argv)
    try:
        ex.run_commandline()
    except SystemExit as exc:
        if "code" in _EXIT_STATUS and exc.code == 1:
            sys.exit(_EXIT_STATUS["code"])
        raise
    except KeyboardInterrupt:
        print("sac: interrupted and stopped at once (a second signal, or one before training started); "
              "the newest complete checkpoint, if any, is intact", file=sys.stderr)
        sys.exit(130)
