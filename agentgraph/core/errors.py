"""Errors a user can act on, under one :class:`AgentGraphError` (networkx's ``NetworkXError`` style).

- :class:`ConfigError` — bad input, found before any request is sent: names the field and the fix in
  one line, so the CLI prints it and exits with status 2 instead of a traceback.
- :class:`BackendError` — a request the backend could not serve; ``transient`` ones are retried.
  :class:`RequestRejected` is the non-transient kind found mid-run (a prompt over the context, an
  adapter on an engine without LoRA): under ``on_error="record"`` it fails that session only.
- :class:`SessionFailed` — a session that cannot go on (:class:`SessionOverflow`: its prompt no
  longer fits); the other sessions of the run are not affected.
- The server's API errors (``agentgraph.serve.server.ApiError``) derive from it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class AgentGraphError(Exception):
    """The base of every error agentgraph raises on purpose."""


class ConfigError(AgentGraphError, ValueError):
    """Bad input, found before any request is sent."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        msg = f"{field}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class BackendError(AgentGraphError, RuntimeError):
    """A request the backend could not serve (engine error, HTTP error, timeout)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class RequestRejected(BackendError):
    """A request refused as it stands, mid-run (a prompt over the context, LoRA off): never retried;
    under ``on_error="record"`` it fails its session and no other."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        super().__init__(f"{field}: {problem}" + (f" ({fix})" if fix else ""))


class SessionFailed(AgentGraphError):
    """A session that cannot go on; it ends as a recorded failure and the others go on."""


class SessionOverflow(SessionFailed):
    """A session's prompt does not fit the context and its rule says stop: that session fails."""


def from_validation(e: ValidationError, where: str = "", fix: str = "") -> ConfigError:
    """The first error of a pydantic validation as a :class:`ConfigError` naming its field.

    ``where`` prefixes the field (``"config."``, ``"role solver.yaml: "``).
    """
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "options"
    return ConfigError(f"{where}{loc}", err["msg"], fix)


def read_yaml_mapping(path: str | Path, field: str, example: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; every way it can be wrong is one :class:`ConfigError`
    on ``field`` (missing, not UTF-8, bad syntax with its line, not a mapping)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field, f"file {str(p)!r} does not exist", "give the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(field, f"{p} is not UTF-8 text", "save it as UTF-8") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(field, f"{p} is not valid YAML{at}", "fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(field, f"{p} must be a YAML mapping", f"write {example}")
    return {str(k): v for k, v in data.items()}


def check_count(n: int, field: str = "n", low: int = 1) -> None:
    """Refuse a count of agents (or samples, beam width, depth) that is not an integer in
    ``[low, 10000]``, naming ``field``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < low:
        raise ConfigError(field, f"{n!r} is not an integer ≥ {low}", f"use {field} ≥ {low}")
    if n > 10_000:
        raise ConfigError(field, f"{n} agents is more than 10,000", "use a smaller team")
