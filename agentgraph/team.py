"""A team: a topology, the role cards its agents use, and the protocol (rounds, inter-round policy,
decision). Everything is checked when the team is built, before any request is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from agentgraph.backends.base import Adapter, Backend
from agentgraph.decisions import DecisionRule, check_applicable, parse_decision
from agentgraph.errors import ConfigError
from agentgraph.inter_round import InterRound, Summarize, parse_policy
from agentgraph.retry import RetryPolicy
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.topology import Topology
from agentgraph.transcript import SessionResult, TranscriptWriter
from roles import Role, RoleBook

OnError = Literal["record", "raise"]


class Team:
    """``Team(full(3), rounds=2, inter_round="summarize", decision="majority")``.

    - ``rounds`` ≥ 1; in each round every agent speaks once, spatial generations in order, agents of
      one generation concurrently; round r reads only round r−1 across temporal edges.
    - ``inter_round``: ``full`` | ``partial[:K[:agreement|confidence]]`` | ``summarize`` (or a policy object).
    - ``decision``: ``majority`` | ``weighted`` | ``judge`` | ``chain_tail`` | ``tree_root``.
    - ``early_stop``: stop after a round in which every agent gave the same parseable answer.
    - ``on_error``: ``record`` (a failed request becomes a turn with ``error`` set; the team decides from
      the agents that answered) or ``raise`` (record it, then raise).
    - ``adapters``: role → :class:`Adapter`, overriding the cards (trainers hot-swap versions here).
    - ``sampling``: team-wide overrides applied over every role's defaults (agent overrides win).
    - ``retry``: :class:`RetryPolicy` — transient failures (server errors, timeouts) are retried with
      exponential backoff and jitter (default 3 attempts); every failed attempt is kept on the turn.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        rounds: int = 2,
        inter_round: str | InterRound = "full",
        decision: str | DecisionRule = "majority",
        roles: RoleBook | None = None,
        early_stop: bool = False,
        on_error: OnError = "record",
        adapters: Mapping[str, Adapter] | None = None,
        sampling: SamplingOverrides | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not isinstance(topology, Topology):
            raise ConfigError(
                "topology", f"{type(topology).__name__} is not a Topology", "use a builder from topologies"
            )
        topology.validate()
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ConfigError("rounds", f"{rounds!r} is not an integer ≥ 1", "use rounds ≥ 1")
        if rounds > 1000:
            raise ConfigError("rounds", f"{rounds} rounds is more than 1000", "use fewer rounds")
        if on_error not in ("record", "raise"):
            raise ConfigError("on_error", f"{on_error!r} is not record or raise", "use record or raise")
        self.topology = topology
        self.rounds = rounds
        self.roles = roles if roles is not None else RoleBook.default()
        self.policy = parse_policy(inter_round)
        self.decision = parse_decision(decision)
        self.early_stop = early_stop
        self.on_error: OnError = on_error
        self.adapters = dict(adapters or {})
        self.sampling = sampling
        self.retry = retry if retry is not None else RetryPolicy()
        # the scheduler asks for an agent's role every turn; the lookup raises a ConfigError naming
        # an unknown role, so building the map is also the check
        self._role_of = {a: self.roles[topology.role_of(a)] for a in topology.agents}
        if isinstance(self.policy, Summarize):
            self.roles[self.policy.role]
        if self.decision.name == "judge":
            self.roles[self.decision.judge_role]
        check_applicable(self.decision, topology)
        self.generations = topology.generations()
        # the scheduler asks these once per turn; networkx edge views cost more than the rest of a turn
        self.spatial_predecessors = {a: topology.spatial_predecessors(a) for a in topology.agents}
        self.temporal_predecessors = {a: topology.temporal_predecessors(a) for a in topology.agents}

    def role(self, agent: str) -> Role:
        return self._role_of[agent]

    def sampling_for(self, agent: str | None, role: Role) -> Sampling:
        s = role.sampling.merged(self.sampling)
        if agent is not None:
            s = s.merged(self.topology.nodes[agent].get("sampling"))
        return s

    def adapter_for(self, agent: str | None, role: Role) -> Adapter | None:
        if agent is not None and (path := self.topology.nodes[agent].get("adapter")):
            return Adapter(name=f"{agent}:{Path(path).name}", path=str(path))
        if role.name in self.adapters:
            return self.adapters[role.name]
        if role.adapter:
            return Adapter(name=f"{role.name}:{Path(role.adapter).name}", path=role.adapter)
        return None

    def describe(self) -> str:
        name = self.topology.graph.get("name", "topology")
        return (
            f"{name}, {len(self.topology)} agents, {self.rounds} rounds, "
            f"inter-round {self.policy.name}, decision {self.decision.name}"
        )

    def check_context(self, problem: str, backend: Backend) -> None:
        """Raise :class:`ConfigError` if a round-0 prompt of ``problem`` exceeds the backend's context."""
        from agentgraph.scheduler import _Session

        _Session(self, problem, backend, "check", None).check_context()

    async def solve(
        self,
        problem: str,
        backend: Backend,
        *,
        gold: str | None = None,
        session_id: str | None = None,
        writer: TranscriptWriter | None = None,
    ) -> SessionResult:
        from agentgraph.scheduler import run_session

        return await run_session(self, problem, backend, gold=gold, session_id=session_id, writer=writer)

    async def solve_many(
        self,
        problems: Sequence[str],
        backend: Backend,
        *,
        golds: Sequence[str | None] | None = None,
        session_ids: Sequence[str] | None = None,
        writer: TranscriptWriter | None = None,
        progress: bool = False,
    ) -> list[SessionResult]:
        from agentgraph.scheduler import run_many

        return await run_many(
            self, problems, backend, golds=golds, session_ids=session_ids, writer=writer, progress=progress
        )
