"""Decisions: how the team's answer is chosen from the last round.

- ``majority`` — plurality of the agents' answers (by canonical answer key); unparseable answers do not
  vote; ties are broken by a generator seeded with the session id (deterministic, unbiased).
- ``weighted`` — like majority, each vote weighted by the agent's ``weight`` node attribute (default 1).
- ``judge`` — a judge role reads the last round's answers and decides (one more request).
- ``chain_tail`` — the answer of the last agent in spatial order (the end of a chain).
- ``tree_root`` — the answer of the node marked ``root=True`` (``tree``/``star`` builders), else the
  single spatial sink.
- ``best_score`` — best-of-N: the answer of the candidate its graders (role cards with
  ``answer_format: score``) scored highest; ties vote among the tied; unparseable scores rank last;
  no parseable score at all → the candidates vote (the decision's note says which happened).

A rule is an object with behaviour: ``check`` (at team build time) and ``decide`` (after the last
round). A user-written rule only has to provide the same three members (:class:`DecisionRule`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import Decision, Turn
from agentgraph.graph.topology import Topology
from agentgraph.protocol.voting import best_scored, scores_of, vote
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import Speak, view

DecisionName = Literal["majority", "weighted", "judge", "chain_tail", "tree_root", "best_score"]
DECISIONS: tuple[DecisionName, ...] = (
    "majority",
    "weighted",
    "judge",
    "chain_tail",
    "tree_root",
    "best_score",
)


@runtime_checkable
class DecisionRule(Protocol):
    """What a decision rule provides to the scheduler."""

    @property
    def name(self) -> str: ...

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        """Raise :class:`ConfigError` if the rule cannot decide for this team."""
        ...

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        """The team's answer from the last round's turns (``speak`` asks one more agent, e.g. a judge)."""
        ...


@dataclass(frozen=True)
class Majority:
    name: str = "majority"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        return None

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        return vote(last, {}, session, self.name)


@dataclass(frozen=True)
class Weighted:
    name: str = "weighted"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        return None

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        weights = {a: float(d.get("weight", 1.0)) for a, d in topology.nodes(data=True)}
        return vote(last, weights, session, self.name)


@dataclass(frozen=True)
class Judge:
    role: str = "judge"
    name: str = "judge"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        roles[self.role]  # a RoleBook raises a ConfigError naming an unknown role

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        answered = [view(t, "temporal") for t in last if t.ok]
        rnd = max((t.round for t in last), default=0)
        judge = await speak("judge", roles[self.role], rnd, "judge", answered)
        if judge.answer is not None:
            return Decision(method=self.name, answer=judge.answer, decider="judge")
        fallback = vote(last, {}, session, self.name)
        fallback.note = "the judge gave no parseable answer; fell back to majority"
        return fallback


@dataclass(frozen=True)
class ChainTail:
    name: str = "chain_tail"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        if len(topology.sinks()) != 1:
            raise ConfigError(
                "decision",
                "chain_tail needs exactly one spatial sink",
                "use majority, or a chain/tree topology",
            )

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        return _answer_of(self.name, topology.generations()[-1][-1], last)


@dataclass(frozen=True)
class TreeRoot:
    name: str = "tree_root"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        if _root(topology) is None:
            raise ConfigError(
                "decision", "tree_root needs a node with root=True or one spatial sink", "use tree(...)"
            )

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        root = _root(topology)
        assert root is not None  # check() refused the team otherwise
        return _answer_of(self.name, root, last)


@dataclass(frozen=True)
class BestScore:
    name: str = "best_score"

    def check(self, topology: Topology, roles: Mapping[str, Role]) -> None:
        graders = [a for a in topology.agents if roles[topology.role_of(a)].answer_format == "score"]
        if not graders:
            raise ConfigError(
                "decision", "best_score needs grader agents (a role with answer_format: score)", "use bon:N"
            )

    async def decide(
        self, topology: Topology, last: list[Turn], session: str, roles: Mapping[str, Role], speak: Speak
    ) -> Decision:
        candidates = [t for t in last if t.kind == "agent"]
        return best_scored(candidates, scores_of(last), session, self.name)


def _answer_of(method: str, who: str, last: list[Turn]) -> Decision:
    t = next((t for t in last if t.agent == who), None)
    return Decision(
        method=method,
        answer=t.answer if t is not None else None,
        decider=who,
        note="" if t is not None and t.ok else f"{who} did not answer",
    )


_RULES: dict[str, type[Majority | Weighted | ChainTail | TreeRoot | BestScore]] = {
    "best_score": BestScore,
    "majority": Majority,
    "weighted": Weighted,
    "chain_tail": ChainTail,
    "tree_root": TreeRoot,
}


def parse_decision(spec: str | DecisionRule) -> DecisionRule:
    """``majority``, ``weighted``, ``judge[:ROLE]``, ``chain_tail``, ``tree_root``, ``best_score``, or
    a rule object.

    Examples
    --------
    >>> parse_decision("judge")
    Judge(role='judge', name='judge')
    >>> parse_decision("tree_root").name
    'tree_root'
    """
    if not isinstance(spec, str):
        if not isinstance(spec, DecisionRule):
            raise ConfigError(
                "decision", f"{type(spec).__name__} is not a decision rule", "use a string or a rule object"
            )
        return spec
    name, _, rest = spec.partition(":")
    if name == "judge":
        return Judge(role=rest or "judge")
    if name not in _RULES or rest:
        raise ConfigError("decision", f"unknown decision {spec!r}", f"use one of {', '.join(DECISIONS)}")
    return _RULES[name]()


def _root(topology: Topology) -> str | None:
    marked = [a for a, d in topology.nodes(data=True) if d.get("root")]
    if len(marked) == 1:
        return str(marked[0])
    sinks = topology.sinks()
    return sinks[0] if len(sinks) == 1 else None
