"""One seed in, independent seeds out.

Seeding the env, the action space, the replay sampler and the networks all with the same integer
would make their random streams identical (numpy's default_rng(s) and Gymnasium's reset(seed=s)
are both PCG64 seeded through SeedSequence(s)): the first random actions would equal the initial
state's noise. SeedSequence.spawn-style derivation gives each consumer its own stream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Keras reduces integer seeds modulo 2**31 - 2; staying below keeps derived seeds distinct.
_SEED_RANGE = 2**31 - 2


def derive(seed: int, count: int) -> list[int]:
    """`count` independent seeds in [0, 2**31 - 2) derived from `seed`."""
    return [int(s) % _SEED_RANGE for s in np.random.SeedSequence(seed).generate_state(count, np.uint64)]


@dataclass(frozen=True)
class RunSeeds:
    env: int  # the training env's first reset
    action_space: int  # the uniform-random warm-up actions
    eval_env: int  # every evaluation resets its env with this seed
    replay: int  # replay sampling
    agent: int  # network initialisation and the policy's sampling noise

    @classmethod
    def from_seed(cls, seed: int) -> "RunSeeds":
        return cls(*derive(seed, 5))

    def for_worker(self, index: int) -> "RunSeeds":
        """Worker `index` of a multi_worker run: its own streams for its envs, warm-up actions and
        replay sampling (worker 0 keeps the run's own). The agent's seed (initial weights, noise) and
        the evaluation env's stay shared: every worker holds the same weights and evaluates alike."""
        if index == 0:
            return self
        env, action_space, replay = derive(self.env + 7919 * index, 3)
        return RunSeeds(env=env, action_space=action_space, eval_env=self.eval_env, replay=replay, agent=self.agent)
