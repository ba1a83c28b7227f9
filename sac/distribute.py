"""Devices and machines: the tf.distribute strategy a run trains under (config entry `strategy`).

    default       one device, no strategy object at all: the first GPU if there is one, else the CPU
                  (exactly the single-device code path; XLA-compiled by default)
    mirrored      MirroredStrategy over this machine's GPUs, or over `cpu_replicas` logical CPU devices
    tpu           TPUStrategy on `tpu_address` (empty: the TPU of this TPU VM)
    multi_worker  MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG as TensorFlow defines it

`batch_size` stays the global batch: with R replicas each computes its B/R rows, the losses are
normalised by B (so the summed gradients are those of the global mean), the gradients are summed
across replicas, and one optimizer step is applied to the mirrored variables, which therefore stay
identical everywhere (sac/agent.py).

Nothing here reads the config: sac/train.py passes the entries in. TF_CONFIG is read by
`read_cluster` at the edge too.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import socket
from typing import Any

from sac.errors import UserError
from sac.kinds import Strategy


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands among the workers of a run (one worker unless multi_worker)."""

    num_workers: int = 1
    worker_index: int = 0  # the chief (TF_CONFIG's "chief", else worker 0) is 0
    spec: dict | None = None  # TF_CONFIG's "cluster"
    task_type: str = "worker"
    task_index: int = 0

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    @property
    def members(self) -> list[tuple[str, int, str]]:
        """(task type, task index, address) of every worker, in worker-index order: chief first."""
        spec = self.spec or {}
        return [(job, i, address) for job in ("chief", "worker") for i, address in enumerate(spec.get(job, []))]

    def describe(self, worker_index: int) -> str:
        """'worker 1 (host:port)' for a worker of the cluster."""
        members = self.members
        address = members[worker_index][2] if 0 <= worker_index < len(members) else "?"
        return f"worker {worker_index} ({address})"

    def lost_worker(self, error: BaseException) -> str | None:
        """Which other worker a failed collective names (TensorFlow's UnavailableError and
        DeadlineExceededError say which task stopped answering), or None if it is no such failure."""
        import tensorflow as tf

        if self.num_workers < 2 or not isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                                                          tf.errors.CancelledError, tf.errors.AbortedError)):
            return None
        tasks = [(job, i) for job, i, _ in self.members]
        for job, index in re.findall(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)", str(error)):
            named = tasks.index((job, int(index))) if (job, int(index)) in tasks else None
            if named is not None and named != self.worker_index:
                return self.describe(named)
        if self.num_workers == 2:
            return self.describe(1 - self.worker_index)
        return "a worker (TensorFlow did not say which)"


def read_cluster(tf_config: str | None) -> Cluster:
    """This process's place in the cluster TF_CONFIG describes; a UserError when it is unusable."""
    if not tf_config:
        raise UserError("strategy=multi_worker needs TF_CONFIG, the cluster as TensorFlow defines it, e.g. "
                        'TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                        '"task": {"type": "worker", "index": 0}}\'')
    try:
        parsed = json.loads(tf_config)
        spec, task = parsed["cluster"], parsed["task"]
        chiefs, workers = list(spec.get("chief", [])), list(spec.get("worker", []))
        task_type, task_index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"TF_CONFIG is not usable ({type(exc).__name__}: {exc}); it needs "
                        '{"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}') from None
    if len(chiefs) > 1 or not chiefs + workers:
        raise UserError(f"TF_CONFIG's cluster needs workers (and at most one chief); got {spec}")
    if set(spec) - {"chief", "worker"}:
        raise UserError(f"TF_CONFIG: sac trains with chief and worker tasks only; got {sorted(spec)}")
    cluster = Cluster(num_workers=len(chiefs) + len(workers), spec=spec, task_type=task_type, task_index=task_index)
    tasks = [(job, i) for job, i, _ in cluster.members]
    if (task_type, task_index) not in tasks:
        raise UserError(f"TF_CONFIG's task {task} is not in its cluster {spec}")
    return dataclasses.replace(cluster, worker_index=tasks.index((task_type, task_index)))


def _local_tpu_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/accel0", "/dev/vfio/0")) or bool(os.environ.get("TPU_NAME"))


def _reachable(address: str, seconds: float = 10.0) -> bool:
    host, _, port = address.removeprefix("grpc://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False


def local_devices(strategy: Strategy, cpu_replicas: int) -> int:
    """How many devices of this machine the strategy replicates over (imports TensorFlow)."""
    import tensorflow as tf

    if strategy == "default":
        return 1
    if cpu_replicas > 0:
        return cpu_replicas
    return len(tf.config.list_physical_devices("GPU")) or (1 if strategy == "multi_worker" else 0)


def check_request(*, strategy: Strategy, cpu_replicas: int, tpu_address: str, batch_size: int,
                  cluster: Cluster) -> None:
    """Refuse, before any work starts, a strategy this machine cannot run (UserError, one line)."""
    if strategy == "default":
        if cpu_replicas:
            raise UserError(f"cpu_replicas={cpu_replicas} splits the CPU for strategy=mirrored or multi_worker; "
                            "strategy=default trains on one device (set cpu_replicas=0)")
        return
    if strategy == "tpu":
        if tpu_address.startswith("grpc://") and not _reachable(tpu_address):
            raise UserError(f"strategy=tpu: no TPU answers at {tpu_address}")
        if not tpu_address and not _local_tpu_present():
            raise UserError("strategy=tpu: no TPU is reachable (this machine has no TPU device and tpu_address "
                            "is empty; give tpu_address=grpc://host:8470 or a TPU name)")
        if cpu_replicas:
            raise UserError("cpu_replicas does not apply to strategy=tpu (set cpu_replicas=0)")
        return
    devices = local_devices(strategy, cpu_replicas)
    if devices == 0:
        raise UserError("strategy=mirrored needs GPUs and this machine has none; set cpu_replicas=N to mirror "
                        "over N logical CPU devices")
    replicas = devices * cluster.num_workers
    if batch_size % replicas:
        raise UserError(f"batch_size={batch_size} does not divide among {replicas} replicas "
                        f"({cluster.num_workers} worker(s) x {devices} device(s)); choose a multiple of {replicas}")


def configure_devices(cpu_replicas: int) -> None:
    """Split the CPU into `cpu_replicas` logical devices (before TensorFlow initialises its runtime)."""
    if cpu_replicas <= 0:
        return
    import tensorflow as tf

    (cpu, *_) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)


@dataclasses.dataclass(frozen=True)
class Replication:
    """The strategy a run trains under and how its global batch is split."""

    strategy: Any  # a tf.distribute.Strategy, or None for the default single-device path
    num_replicas: int = 1  # over all workers
    num_workers: int = 1
    worker_index: int = 0

    @property
    def local_replicas(self) -> int:
        return self.num_replicas // self.num_workers

    @functools.cached_property
    def _worker_sum(self) -> Any:
        """A compiled collective: an int64 summed over the workers (each worker's first replica
        contributes it, its other replicas 0)."""
        import tensorflow as tf

        strategy, local = self.strategy, self.local_replicas

        def contribute(value: Any) -> Any:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            return tf.where(tf.equal(replica % local, 0), value, tf.zeros_like(value))

        @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
        def collective(value: Any) -> Any:
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(contribute, args=(value,)), axis=None)

        return collective

    def _sum_over_workers(self, value: int) -> int:
        import tensorflow as tf

        return int(self._worker_sum(tf.constant(value, tf.int64)))

    def any_worker(self, flag: bool) -> bool:
        """True on every worker when `flag` is true on any (a stop request, say): a collective, so
        that all workers stop at the same step. On one worker, just `flag`."""
        return bool(flag) if self.num_workers < 2 else self._sum_over_workers(int(bool(flag))) > 0

    def from_chief(self, value: int) -> int:
        """The chief's `value`, on every worker (a collective)."""
        return value if self.num_workers < 2 else self._sum_over_workers(value if self.worker_index == 0 else 0)


def _watch_workers(cluster: Cluster, worker_timeout: float) -> None:
    """Configure TensorFlow's coordination service (as MultiWorkerMirroredStrategy would, which then
    keeps it) with a heartbeat timeout of `worker_timeout`: a worker whose process dies or freezes
    stops sending heartbeats, and every collective of the others then fails naming it, within that
    time (at once when its connection drops). Not a collective timeout: TF 2.21's
    CommunicationOptions(timeout_seconds) leaks a thread per collective call (measured: +2 threads
    per call, 1,000 per 500 calls, until thread creation fails), and this loop makes one every step."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    leader = "/job:chief/replica:0/task:0" if (cluster.spec or {}).get("chief") else "/job:worker/replica:0/task:0"
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(tasks))
            for job, tasks in (cluster.spec or {}).items()]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=leader, coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=int(worker_timeout * 1000))


def make_strategy(*, strategy: Strategy, cpu_replicas: int, tpu_address: str, worker_timeout: float,
                  cluster: Cluster) -> Replication:
    """Create the strategy (configure_devices must have run before). `default` gives no strategy."""
    if strategy == "default":
        return Replication(None)
    import tensorflow as tf

    if strategy == "mirrored":
        kind = "CPU" if cpu_replicas > 0 else "GPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        made = tf.distribute.MirroredStrategy(devices)
    elif strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        made = tf.distribute.TPUStrategy(resolver)
    else:
        _watch_workers(cluster, worker_timeout)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster.spec), task_type=cluster.task_type, task_id=cluster.task_index,
            rpc_layer="grpc")
        made = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return Replication(made, num_replicas=made.num_replicas_in_sync, num_workers=cluster.num_workers,
                       worker_index=cluster.worker_index)
