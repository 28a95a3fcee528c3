"""What a strategy may do with a session, and what a strategy is.

A :class:`Strategy` decides how a session spends its requests: the rounds protocol
(:class:`agentgraph.engine.rounds.Rounds`, the default), beam search and cascades
(:mod:`agentgraph.shapes.strategies`). It sees the session only through :class:`SessionLike` — the
scheduler's :class:`~agentgraph.engine.session.Session` is one — so strategies sit below the engine
and the engine never special-cases any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentgraph.core.messages import Decision, Turn, TurnKind
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import PeerView

if TYPE_CHECKING:
    from agentgraph.team.team import Team


class SessionLike(Protocol):
    """The session a strategy drives."""

    team: Team
    session: str
    turns: list[Turn]
    eager: bool  # whether its coroutines start eagerly (agentgraph.engine.eager)

    async def speak(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> Turn: ...

    def child(self, team: Team, round_offset: int) -> SessionLike: ...

    async def play(self) -> tuple[Decision, int, bool]: ...


@runtime_checkable
class Strategy(Protocol):
    """How a session spends its requests; ``run`` returns ``(decision, rounds_run, stopped_early)``."""

    @property
    def name(self) -> str: ...

    async def run(self, session: SessionLike) -> tuple[Decision, int, bool]: ...
