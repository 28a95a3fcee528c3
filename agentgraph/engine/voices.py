"""Speakers, resolved once: what each (agent, role, kind) of a team sends with on one backend.

A turn's sampling, adapter, model, the backend's view of that model, its think markers and the
reader's prompt layout depend on the team and the backend, never on the problem, the round or the
peers. :func:`~agentgraph.engine.scheduler.prepare` makes one :class:`Voices` for all the sessions it
builds, so a run of 10,000 sessions resolves each speaker once instead of once per session (and a
turn reads one dict entry instead of asking the team, the preset and the backend again).
"""

from __future__ import annotations

from typing import NamedTuple

from agentgraph.backends.base import Adapter, Backend, Served
from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import TurnKind
from agentgraph.core.sampling import Sampling
from agentgraph.core.thinking import ThinkFormat
from agentgraph.engine import eager
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import Layout
from agentgraph.team.team import Team


class Voice(NamedTuple):
    """What one speaker sends with (see the module docstring)."""

    sampling: Sampling
    adapter: Adapter | None
    model: str | None
    served: Served
    think: ThinkFormat | None
    layout: Layout
    answer_format: str


class Voices:
    """The speakers of ``team`` on ``backend``, each resolved on first use."""

    def __init__(self, team: Team, backend: Backend) -> None:
        self.team = team
        self.backend = backend
        self._views: dict[str | None, tuple[Served, ThinkFormat | None]] = {}
        self._voices: dict[tuple[str, str, TurnKind], Voice] = {}
        # whether the backend's requests finish at once (agentgraph.engine.eager): asked once
        self.eager = eager.safe(backend)

    def view(self, model: str | None) -> tuple[Served, ThinkFormat | None]:
        """``model`` as the backend serves it, and its think markers (the team's, or detected from
        the model's chat template)."""
        if (hit := self._views.get(model)) is None:
            served = self.backend.for_model(model)
            if served is None:
                raise ConfigError(
                    "model", f"no backend serves {model!r}", "serve it (a Router member, --role-model)"
                )
            hit = self._views[model] = (served, self._think(served, model))
        return hit

    def _think(self, served: Served, model: str | None) -> ThinkFormat | None:
        think, found = self.team.think, served.think_format
        if think == "none":
            return None
        if think == "auto":
            return found
        if found is not None and (found.open, found.close) != (think.open, think.close):
            raise ConfigError(
                "think",
                f"{model or 'the default model'} marks thinking with {found.open} … {found.close}, "
                f"but the team forces {think.open} … {think.close}",
                "leave think auto: each model then keeps its own markers",
            )
        return think

    def voice(self, agent: str, role: Role, kind: TurnKind) -> Voice:
        """What ``agent`` speaking as ``role`` in a ``kind`` turn sends with."""
        key = (agent, role.name, kind)
        if (hit := self._voices.get(key)) is None:
            team = self.team
            sampling, adapter, model = team.speaker(agent, role, kind)
            served, think = self.view(model)
            who = agent if kind in ("agent", "score") else None
            hit = self._voices[key] = Voice(
                sampling,
                adapter,
                model,
                served,
                think,
                Layout(role, team.share_of(role), team.preset_of(who, role).system_prompt),
                role.answer_format,
            )
        return hit
