"""The one error type users see: a bad input, reported as one line without a traceback."""
from __future__ import annotations

from sacred.utils import SacredError


class UserError(SacredError):
    """A problem with what the user asked for (config, env id, checkpoint, path).

    Sacred prints a SacredError with ``print_traceback=False`` as ``<type>: <message>`` and exits
    with status 1. Naming the type ``error`` in ``builtins`` makes that line read
    ``error: <message>``, like any command-line tool. ``sac.play`` prints it the same way.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, print_traceback=False)


UserError.__module__ = "builtins"
UserError.__qualname__ = "error"
UserError.__name__ = "error"
