"""Run by tests/test_distribute.py in a fresh process (the CPU must be split into logical devices
before TensorFlow starts): the same updates on one device and under MirroredStrategy over
`cpu_replicas` logical CPUs, from the same weights and the same global batches. Prints one JSON
object: the largest difference of every state group and of the metrics and actions."""
from __future__ import annotations

import json
import sys

import numpy as np


def _batches(rng: np.random.Generator, k: int, b: int, low: np.ndarray, high: np.ndarray, sequences: bool) -> dict:
    if not sequences:
        batches = {"obs": rng.normal(size=(k, b, 5)), "action": rng.uniform(low, high, size=(k, b, 2)),
                   "reward": rng.normal(size=(k, b)), "next_obs": rng.normal(size=(k, b, 5)),
                   "terminated": (rng.uniform(size=(k, b)) < 0.2)}
    else:  # sequences of 6 steps (recurrent networks), some padded, some warmed up by burn-in
        t = 6
        mask = np.cumprod(rng.uniform(size=(k, b, t)) < 0.9, axis=-1)
        mask[..., 0] = 1
        action = rng.uniform(low, high, size=(k, b, t, 2))
        batches = {"obs": rng.normal(size=(k, b, t + 1, 5)), "action": action,
                   "prev_action": np.concatenate([rng.uniform(low, high, size=(k, b, 1, 2)), action], axis=2),
                   "reward": rng.normal(size=(k, b, t)), "terminated": (rng.uniform(size=(k, b, t)) < 0.2),
                   "mask": mask, "warm": rng.uniform(size=(k, b)) < 0.5}
    return {key: value.astype(np.float32) for key, value in batches.items()}


def main(replicas: int, calls: int, network: str = "mlp") -> None:
    from sac.builder import configure_tensorflow

    configure_tensorflow(0, cpu_replicas=replicas)
    import tensorflow as tf

    from sac.agent import SACAgent
    from sac.distribute import Replication
    from tests.conftest import sac_settings

    low, high = np.array([-1.0, 0.0], np.float32), np.array([3.0, 0.5], np.float32)
    settings = sac_settings(tau=0.05, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    nets = dict(actor_network=network, critic_network=network, rnn_units=8, burn_in=2)
    one = SACAgent(5, low, high, [32, 32], settings, seed=3, jit_compile=True, **nets)
    mirrored = SACAgent(5, low, high, [32, 32], settings, seed=3,
                        replication=Replication(strategy, num_replicas=strategy.num_replicas_in_sync), **nets)
    assert all(np.array_equal(a, b) for group in one.get_state()
               for a, b in zip(one.get_state()[group], mirrored.get_state()[group]))  # the same start
    rng = np.random.default_rng(0)
    worst = {"metrics": 0.0, "actions": 0.0}
    for call in range(calls):
        k, b = (3 if call == calls - 1 else 1), 64  # the last call makes 3 updates in one call
        batches = _batches(rng, k, b, low, high, one.sequences)
        act_obs = rng.normal(size=(4, 5)).astype(np.float32)
        state, first = one.policy.initial_state(4), np.ones(4, bool)
        if state:
            state = [rng.normal(size=s.shape).astype(np.float32) for s in state]
            first = rng.uniform(size=4) < 0.5
        metrics_one, actions_one, _ = one.train_and_act(batches, act_obs, state, first)
        metrics_mirrored, actions_mirrored, _ = mirrored.train_and_act(batches, act_obs, state, first)
        worst["metrics"] = max(worst["metrics"], max(abs(float(metrics_one[n]) - float(metrics_mirrored[n]))
                                                     for n in metrics_one))
        worst["actions"] = max(worst["actions"], float(np.abs(actions_one - actions_mirrored).max()))
    a, b = one.get_state(), mirrored.get_state()
    for group in a:
        worst[group] = max(float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).max())
                           for x, y in zip(a[group], b[group], strict=True))
    worst["moved"] = max(float(np.abs(x - y).max()) for x, y in zip(a["actor"], SACAgent(
        5, low, high, [32, 32], settings, seed=3, jit_compile=False, **nets).get_state()["actor"]))
    worst["updates"] = int(mirrored.update_counter.numpy())
    worst["replicas"] = strategy.num_replicas_in_sync
    print(json.dumps(worst))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
