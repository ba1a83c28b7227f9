"""Run by tests/test_distribute.py in a fresh process (the CPU must be split into logical devices
before TensorFlow starts): the same updates on one device and under MirroredStrategy over
`cpu_replicas` logical CPUs, from the same weights and the same global batches. Prints one JSON
object: the largest difference of every state group and of the metrics and actions."""
from __future__ import annotations

import json
import sys

import numpy as np


def main(replicas: int, calls: int) -> None:
    from sac.builder import configure_tensorflow

    configure_tensorflow(0, cpu_replicas=replicas)
    import tensorflow as tf

    from sac.agent import SACAgent, SACSettings
    from sac.distribute import Replication

    low, high = np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32)
    settings = SACSettings(target_entropy=-1.0, tau=0.05, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    one = SACAgent(5, low, high, [32, 32], settings, seed=3, jit_compile=True)
    mirrored = SACAgent(5, low, high, [32, 32], settings, seed=3,
                        replication=Replication(strategy, num_replicas=strategy.num_replicas_in_sync))
    assert all(np.array_equal(a, b) for group in one.get_state()
               for a, b in zip(one.get_state()[group], mirrored.get_state()[group]))  # the same start
    rng = np.random.default_rng(0)
    worst = {"metrics": 0.0, "actions": 0.0}
    for call in range(calls):
        k, b = (3 if call == calls - 1 else 1), 64  # the last call makes 3 updates in one call
        batches = {"obs": rng.normal(size=(k, b, 5)), "action": rng.uniform(low, high, size=(k, b, 2)),
                   "reward": rng.normal(size=(k, b)), "next_obs": rng.normal(size=(k, b, 5)),
                   "terminated": (rng.uniform(size=(k, b)) < 0.2)}
        batches = {key: value.astype(np.float32) for key, value in batches.items()}
        act_obs = rng.normal(size=(4, 5)).astype(np.float32)
        metrics_one, actions_one, _ = one.train_and_act(batches, act_obs)
        metrics_mirrored, actions_mirrored, _ = mirrored.train_and_act(batches, act_obs)
        worst["metrics"] = max(worst["metrics"], max(abs(float(metrics_one[n]) - float(metrics_mirrored[n]))
                                                     for n in metrics_one))
        worst["actions"] = max(worst["actions"], float(np.abs(actions_one - actions_mirrored).max()))
    a, b = one.get_state(), mirrored.get_state()
    for group in a:
        worst[group] = max(float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).max())
                           for x, y in zip(a[group], b[group], strict=True))
    worst["moved"] = max(float(np.abs(x - y).max()) for x, y in zip(a["actor"], SACAgent(
        5, low, high, [32, 32], settings, seed=3, jit_compile=False).get_state()["actor"]))
    worst["updates"] = int(mirrored.update_counter.numpy())
    worst["replicas"] = strategy.num_replicas_in_sync
    print(json.dumps(worst))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
