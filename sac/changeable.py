"""What a resume may change of a run's config, and the comparison of configs except for that:
resume refuses other changes, the grid refuses a results folder trained with another config, and
the report names the entries in which its runs differ.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

# Entries a resume may change: more steps, the devices it now runs on (checkpoints do not depend on
# them), and pictures (videos, a window). The number of workers of a multi_worker run may not change
# (its replay buffers).
CHANGEABLE = ("total_steps", "num_threads", "strategy", "cpu_replicas", "tpu_address", "worker_timeout",
              "video_every", "render")
CHANGEABLE_TEXT = ", ".join(CHANGEABLE[:-1]) + " and " + CHANGEABLE[-1]
# Never part of the comparison: `resume` names where a run came from, not what it trains.
_LEFT_OUT = ("resume", *CHANGEABLE)


def fixed_entries(config: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `config` that make the experiment: all but resume= and the changeable ones."""
    return {key: value for key, value in config.items() if key not in _LEFT_OUT}


def changed_entries(old: Mapping[str, Any], new: Mapping[str, Any], *, lacking: Literal["changed", "skipped"]
                    ) -> list[str]:
    """The fixed entries of `new` whose value differs from `old`'s, in `new`'s order. An entry `old`
    lacks counts as changed (resume: the user typed an entry the run does not have) or is skipped
    (the grid: a run of an older version lacks the entries added since)."""
    return [key for key, value in fixed_entries(new).items()
            if (key in old or lacking == "changed") and (key not in old or old[key] != value)]
