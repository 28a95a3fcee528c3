"""Program-aware scheduling: each request's vLLM priority from the state of its session.

A team session is a program whose later requests wait on its earlier ones. vLLM serves requests
first come, first served, so under load every session's turns queue behind every other session's,
and the time to a finished session grows with the number in flight. vLLM's priority scheduler
(``scheduling_policy="priority"``; lower runs first, ties by arrival) lets the backend order requests
by their session instead (the idea of Autellix, 2025):

- ``fcfs`` — vLLM's own order (the default; the engine runs its FCFS scheduler).
- ``session-age`` — the oldest session first: a session's later rounds go ahead of newer sessions'
  first rounds, so sessions finish in the order they came.
- ``session-progress`` — the session with the most rounds done first (ties: the oldest), so work
  nearly finished is not held behind work just begun.
- ``least-served`` — the session that has been served the fewest tokens first (Autellix's
  program-level least attained service, counted in generated tokens): short sessions are not held
  behind long ones.

The backend learns a session's age when it sees its first request, and its service from the tokens
of its finished requests; it keeps the most recent 100,000 sessions (an older one seen again is
counted as new). ``docs/benchmarks.md`` ("Sessions under load") has the measurement behind the
default.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Literal, get_args

from agentgraph.core.errors import ConfigError

Scheduling = Literal["fcfs", "session-age", "session-progress", "least-served"]
POLICIES: tuple[str, ...] = get_args(Scheduling)
_KEEP = 100_000
_ROUND = 1 << 40  # a round outweighs any age: ages are counts of sessions


def check_scheduling(policy: str) -> Scheduling:
    if policy not in POLICIES:
        raise ConfigError("scheduling", f"unknown policy {policy!r}", f"use one of {', '.join(POLICIES)}")
    return policy  # type: ignore[return-value]


class Priorities:
    """The priority of each request of a backend under ``policy`` (lower runs first).

    >>> p = Priorities("session-age")
    >>> p.of("s1", 0), p.of("s2", 0), p.of("s1", 1)
    (0, 1, 0)
    >>> p = Priorities("least-served")
    >>> p.served("s1", 40)
    >>> p.of("s1", 1), p.of("s2", 0)
    (40, 0)
    """

    def __init__(self, policy: str) -> None:
        self.policy = check_scheduling(policy)
        self._age: OrderedDict[str, int] = OrderedDict()
        self._tokens: dict[str, int] = {}
        self._count = itertools.count()

    @property
    def engine_policy(self) -> Literal["fcfs", "priority"]:
        """The scheduler the engine (or ``vllm serve --scheduling-policy``) must run."""
        return "fcfs" if self.policy == "fcfs" else "priority"

    def _age_of(self, session: str) -> int:
        age = self._age.get(session)
        if age is None:
            age = self._age[session] = next(self._count)
            if len(self._age) > _KEEP:
                old, _ = self._age.popitem(last=False)
                self._tokens.pop(old, None)
        return age

    def of(self, session: str, round: int) -> int:
        if self.policy == "fcfs":
            return 0
        age = self._age_of(session)
        if self.policy == "session-age":
            return age
        if self.policy == "session-progress":
            return age - round * _ROUND
        return self._tokens.get(session, 0)

    def served(self, session: str, tokens: int) -> None:
        """Count ``tokens`` generated for ``session`` (decoding is where a session's time goes)."""
        if self.policy == "least-served":
            self._age_of(session)
            self._tokens[session] = self._tokens.get(session, 0) + tokens


__all__ = ["POLICIES", "Priorities", "Scheduling", "check_scheduling"]
