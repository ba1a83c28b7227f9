"""The string options that travel from the config deep into the parts, as Literal types, with
their allowed values. sac/config.py checks every config value against these at the edge; below it
the types say which strings a parameter takes. Nothing here imports TensorFlow.
"""
from __future__ import annotations

from typing import Literal, get_args

NetworkKind = Literal["mlp", "lstm", "gru"]  # actor_network, critic_network (sac/networks.py)
NETWORK_KINDS: tuple[str, ...] = get_args(NetworkKind)

Strategy = Literal["default", "mirrored", "tpu", "multi_worker"]  # strategy (sac/distribute.py)
STRATEGIES: tuple[str, ...] = get_args(Strategy)

CheckpointKind = Literal["model", "state"]  # model-<step>.pkl (a policy), state-<step>.pkl (sac/checkpoint.py)

# Where a grid cell's run stands (sac/rundirs.py CellStatus), in the order the grid reports them.
CellState = Literal["done", "running", "stopped", "failed", "missing"]
CELL_STATES: tuple[str, ...] = get_args(CellState)


def is_recurrent(network: NetworkKind) -> bool:
    return network != "mlp"


def any_recurrent(actor_network: NetworkKind, critic_network: NetworkKind) -> bool:
    """Any recurrent network makes the update learn from sequences (an MLP then acts per step in them)."""
    return is_recurrent(actor_network) or is_recurrent(critic_network)
