"""The one builder: every part of a run, made from a checked config (sac.config.RunConfig).

`sac/train.py`, the benchmarks and the tests all build runs here, so a new part (a distribution
strategy, a recurrent network) is added once. The builder is the last place that reads the config:
each part gets explicit arguments (as in Acme's builders).

    parts = build_run(run_config(env_id="Pendulum-v1", total_steps=2000), run_dir=None)
    parts.train()                         # the training loop (sac/loop.py) over these parts
    parts.close()
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sac.config import RunConfig, resolve_target_entropy
from sac.distribute import Cluster
from sac.resume import state_directory

if TYPE_CHECKING:  # sac.agent imports TensorFlow, which build_run imports only once configured
    from sac.agent import SACSettings

KEEP_TRAINING_STATES = 2  # the newest, and the one before it in case the newest is damaged


def configure_tensorflow(num_threads: int, cpu_replicas: int = 0) -> None:
    """Quiet TensorFlow's C++ logging, set its CPU thread pools (0: TensorFlow's default, all cores)
    and split the CPU into `cpu_replicas` logical devices (0: not split). Must run before TensorFlow
    executes anything; training, benchmarks and tests share it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from sac.distribute import configure_devices

    tf.get_logger().setLevel("WARNING")  # tf.distribute reports every collective it builds at INFO

    if num_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    configure_devices(cpu_replicas)


@dataclass
class RunParts:
    """What a run is made of; `train()` hands them to the training loop."""

    config: RunConfig
    cluster: Cluster  # this process's place among the workers (one worker unless multi_worker)
    replication: Any  # sac.distribute.Replication: the strategy (None by default) and the batch split
    seeds: Any  # sac.seeding.RunSeeds
    envs: Any  # gymnasium VectorEnv: num_envs training envs
    eval_envs: Any  # gymnasium VectorEnv: one env per evaluation episode
    observation_shape: tuple[int, ...]
    # sac.agent.SACAgent: networks, optimizers, policy, compiled update; agent.settings holds the
    # update's hyperparameters, the resolved target entropy among them.
    agent: Any
    buffer: Any  # sac.replay.ReplayBuffer
    schedule: Any  # sac.loop.Schedule
    logger: Any  # sac.metrics.MetricsLogger
    checkpoints: Any  # sac.training_state.CheckpointWriter, or None without a run directory
    video: Any = None  # sac.rendering.VideoRecorder (video_every), or None
    viewer: Any = None  # sac.rendering.Viewer (render=True): env 0 mirrored into a window, or None

    def restore(self, payload: dict[str, Any], state_path: Path) -> Any:
        """Load a training state (read from `state_path`) into these freshly built parts; returns the
        loop state to resume from. A UserError when it does not fit them."""
        from sac import training_state
        from sac.errors import UserError

        if list(payload["observation_shape"]) != list(self.observation_shape):
            raise UserError(f"resume: {state_path} holds a policy for observations of shape "
                            f"{tuple(payload['observation_shape'])}, but {self.config.env_id} now gives "
                            f"{self.observation_shape}")
        try:
            loop_state = training_state.restore(payload, agent=self.agent, buffer=self.buffer, envs=self.envs)
        except (ValueError, KeyError) as exc:
            raise UserError(f"resume: {state_path} does not fit this run: {exc}") from None
        self.logger.resume_from(payload["metrics"])
        if self.checkpoints is not None:
            self.checkpoints.last_state = Path(state_path)
        return loop_state

    def train(self, resume: Any = None, stop_requested: Callable[[], bool] = lambda: False,
              save_checkpoint: Callable[[int, Any], None] | None = None) -> Any:
        """Run the training loop to total_steps (or a stop request); returns the final loop state.
        Checkpoints go to the run directory's writer unless `save_checkpoint` is given."""
        from sac.loop import train_loop

        if save_checkpoint is None:
            save_checkpoint = self.checkpoints if self.checkpoints is not None else (lambda step, state: None)
        return train_loop(envs=self.envs, eval_envs=self.eval_envs, agent=self.agent, buffer=self.buffer,
                          schedule=self.schedule, seeds=self.seeds, logger=self.logger,
                          save_checkpoint=save_checkpoint, resume=resume,
                          stop_requested=lambda: self.replication.any_worker(stop_requested()),
                          num_workers=self.cluster.num_workers, video=self.video)

    def close(self) -> None:
        self.logger.close()
        self.envs.close()
        self.eval_envs.close()
        for part in (self.video, self.viewer):
            if part is not None:
                part.close()


def sac_settings(config: RunConfig, target_entropy: float) -> SACSettings:
    """The update's hyperparameters from a run's config, with the entropy target resolved (a number:
    config.resolve_target_entropy of the config's entry and the env's action box)."""
    from sac.agent import SACSettings

    return SACSettings(gamma=config.gamma, tau=config.tau, reward_scale=config.reward_scale,
                       target_entropy=float(target_entropy), learn_alpha=config.learn_alpha,
                       initial_alpha=config.initial_alpha, actor_lr=config.actor_lr, critic_lr=config.critic_lr,
                       alpha_lr=config.alpha_lr)


def build_run(config: RunConfig, *, run_dir: Path | None = None, metrics_sink: Any = None,
              stream: TextIO = sys.stdout, cluster: Cluster = Cluster()) -> RunParts:
    """Build every part of a run. With `run_dir`, TensorBoard files and checkpoints go there;
    `metrics_sink` (Sacred's Run, or anything with log_scalar) receives every scalar too. `cluster`
    (from TF_CONFIG, read at the edge) places this process among the workers of a multi_worker run:
    only the chief has a run directory of its own (`run_dir`); the other workers learn its id from
    the chief once connected and keep what resume needs of them (their replay buffers and env
    generators, in a whole training state) in <chief's run directory>/workers/<index>/.
    configure_tensorflow(config.num_threads, config.cpu_replicas) must have run first."""
    import numpy as np
    import tensorflow as tf

    from sac.agent import SACAgent
    from sac.distribute import make_strategy
    from sac.envs import make_vector_env, observation_dim
    from sac.loop import Schedule
    from sac.metrics import MetricsLogger
    from sac.policy import PolicySpec
    from sac.rendering import ShownInViewer, VideoRecorder, Viewer
    from sac.replay import ReplayBuffer
    from sac.seeding import RunSeeds
    from sac.training_state import CheckpointWriter

    # The strategy first: with multi_worker its creation connects the workers.
    replication = make_strategy(strategy=config.strategy, cpu_replicas=config.cpu_replicas,
                                tpu_address=config.tpu_address, worker_timeout=config.worker_timeout,
                                cluster=cluster)
    states_of = run_dir  # the run directory this process keeps its training states in
    if cluster.num_workers > 1:
        # Workers start in the same directory of a shared file system (as TensorFlow's own
        # multi-worker checkpoints assume): the chief's run is runs/<id> for all of them.
        run_id = replication.from_chief(int(Path(run_dir).name) if cluster.is_chief and run_dir is not None else 0)
        if not cluster.is_chief:
            states_of = Path("runs") / str(run_id) if run_id else None
            run_dir, metrics_sink = None, None
    checkpoint_dir = state_directory(states_of, cluster.worker_index) if states_of is not None else None
    # Independent streams per worker: worker 0 has the run's own seeds, so one worker is the default.
    seeds = RunSeeds.from_seed(config.seed).for_worker(cluster.worker_index)
    np.random.seed(config.seed)  # nothing here draws from the global generators; seeded for user code
    tf.random.set_seed(config.seed)

    # Environments: num_envs to train on, one per evaluation episode (seeded apart inside the loop).
    # Pictures render in processes of their own (sac/rendering.py): render=True mirrors env 0 into a
    # window; video_every records an evaluation episode (eval env 0's start) every so many steps.
    viewer = Viewer(config.env_id, config.env_kwargs, stream=stream) if config.render and cluster.is_chief else None
    envs = make_vector_env(config.env_id, config.env_kwargs, config.num_envs,
                           wrap_first=None if viewer is None else lambda env: ShownInViewer(env, viewer))
    video = None
    if config.video_every and run_dir is not None:
        video = VideoRecorder(config.env_id, config.env_kwargs, Path(run_dir) / "videos", seed=seeds.eval_env,
                              stream=stream)
    eval_envs = make_vector_env(config.env_id, config.env_kwargs, config.eval_episodes)
    observation_shape = tuple(int(d) for d in envs.single_observation_space.shape)
    obs_dim = observation_dim(envs.single_observation_space)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    action_dim = low.shape[0]

    # None: -dim(A)/2 in [-1, 1] units, given for the density in the env's units (default_target_entropy).
    # A number (the user's, or the one a resumed run was trained with, sac/resume.py) is taken as given.
    settings = sac_settings(config, resolve_target_entropy(config.target_entropy, low.tolist(), high.tolist()))
    agent = SACAgent(obs_dim, low, high, config.hidden_sizes, settings, seed=seeds.agent,
                     jit_compile=config.jit_compile, replication=replication, actor_network=config.actor_network,
                     critic_network=config.critic_network, rnn_units=config.rnn_units, burn_in=config.burn_in)
    # No larger than the run needs: a buffer that never wraps keeps every transition sampleable.
    buffer = ReplayBuffer(min(config.buffer_size, config.total_steps + config.num_envs), obs_dim, action_dim,
                          seed=seeds.replay, num_streams=config.num_envs)
    logger = MetricsLogger(metrics_sink, run_dir, config.total_steps, stream=stream)
    schedule = Schedule(
        # Each worker draws its share of the global batch from its own replay buffer.
        total_steps=config.total_steps, learning_starts=config.learning_starts,
        batch_size=config.batch_size // cluster.num_workers,
        eval_every=config.eval_every, checkpoint_every=config.checkpoint_every, log_every=config.log_every,
        train_every=config.train_every, gradient_steps=config.gradient_steps,
        sequence_length=config.sequence_length if agent.sequences else 0, burn_in=config.burn_in,
        video_every=config.video_every if video is not None else 0,
    )
    checkpoints = None
    if checkpoint_dir is not None:
        policy_spec = PolicySpec(env_id=config.env_id, env_kwargs=config.env_kwargs,
                                 observation_shape=observation_shape, action_low=low, action_high=high,
                                 hidden_sizes=tuple(config.hidden_sizes), actor_network=config.actor_network,
                                 rnn_units=config.rnn_units)
        checkpoints = CheckpointWriter(
            checkpoint_dir, config=config.to_dict(), policy_spec=policy_spec, agent=agent, buffer=buffer,
            envs=envs, logger=logger, keep_policies=config.keep_checkpoints if cluster.is_chief else 0,
            keep_states=KEEP_TRAINING_STATES, num_workers=cluster.num_workers)
    return RunParts(config=config, cluster=cluster, replication=replication, seeds=seeds, envs=envs,
                    eval_envs=eval_envs, observation_shape=observation_shape, agent=agent, buffer=buffer, schedule=schedule,
                    logger=logger, checkpoints=checkpoints, video=video, viewer=viewer)
