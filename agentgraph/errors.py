"""Errors a user can act on.

Every refusal names the offending field and the fix in one line, so the CLI can print it and exit
with status 2 instead of a traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input, found before any request is sent."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        msg = f"{field}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class BackendError(RuntimeError):
    """A request the backend could not serve (engine error, HTTP error, timeout)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
