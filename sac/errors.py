"""The one error type users see: a bad input, reported as one line without a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for (config, env id, checkpoint, path).

    Every command prints it as ``error: <message>`` and exits non-zero, without a traceback:
    `sac.play` catches it itself; `sac.train` hands it to Sacred as a SacredError (sac/train.py).
    A plain Exception, so that sac.play and load_policy need no Sacred.
    """
