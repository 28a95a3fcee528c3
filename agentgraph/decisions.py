"""Decisions: how the team's answer is chosen from the last round.

- ``majority`` — plurality of the agents' answers (by canonical answer key); unparseable answers do not
  vote; ties are broken by a generator seeded with the session id (deterministic, unbiased).
- ``weighted`` — like majority, each vote weighted by the agent's ``weight`` node attribute (default 1).
- ``judge`` — a judge role reads the last round's answers and decides (one more request).
- ``chain_tail`` — the answer of the last agent in spatial order (the end of a chain).
- ``tree_root`` — the answer of the node marked ``root=True`` (``tree``/``star`` builders), else the
  single spatial sink.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentgraph.answers import answer_key
from agentgraph.errors import ConfigError
from agentgraph.messages import Turn
from agentgraph.topology import Topology

DecisionName = Literal["majority", "weighted", "judge", "chain_tail", "tree_root"]
DECISIONS: tuple[DecisionName, ...] = ("majority", "weighted", "judge", "chain_tail", "tree_root")


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str
    answer: str | None
    votes: dict[str, float] = Field(default_factory=dict)
    decider: str | None = None
    note: str = ""


@dataclass(frozen=True)
class DecisionRule:
    name: DecisionName
    judge_role: str = "judge"


def parse_decision(spec: str | DecisionRule) -> DecisionRule:
    if isinstance(spec, DecisionRule):
        return spec
    name, _, rest = str(spec).partition(":")
    if name not in DECISIONS:
        raise ConfigError("decision", f"unknown decision {spec!r}", f"use one of {', '.join(DECISIONS)}")
    if name == "judge":
        return DecisionRule("judge", judge_role=rest or "judge")
    return DecisionRule(name)


def check_applicable(rule: DecisionRule, topology: Topology) -> None:
    if rule.name == "chain_tail" and len(topology.sinks()) != 1:
        raise ConfigError(
            "decision", "chain_tail needs exactly one spatial sink", "use majority, or a chain/tree topology"
        )
    if rule.name == "tree_root" and _root(topology) is None:
        raise ConfigError(
            "decision", "tree_root needs a node with root=True or one spatial sink", "use tree(...)"
        )


def _root(topology: Topology) -> str | None:
    marked = [a for a, d in topology.nodes(data=True) if d.get("root")]
    if len(marked) == 1:
        return str(marked[0])
    sinks = topology.sinks()
    return sinks[0] if len(sinks) == 1 else None


def vote(turns: list[Turn], weights: dict[str, float], session: str, method: str) -> Decision:
    tally: dict[str, float] = defaultdict(float)
    first: dict[str, str] = {}
    for t in turns:
        key = answer_key(t.answer)
        if key is None or t.answer is None:
            continue
        tally[key] += weights.get(t.agent, 1.0)
        first.setdefault(key, t.answer)
    if not tally:
        return Decision(method=method, answer=None, note="no agent gave a parseable answer")
    best = max(tally.values())
    tied = sorted(k for k, v in tally.items() if v == best)
    pick = tied[0] if len(tied) == 1 else random.Random(f"tie|{session}").choice(tied)
    return Decision(
        method=method,
        answer=first[pick],
        votes=dict(tally),
        note="tie broken at random" if len(tied) > 1 else "",
    )


def decide_without_judge(rule: DecisionRule, topology: Topology, last: list[Turn], session: str) -> Decision:
    by_agent = {t.agent: t for t in last}
    if rule.name in ("majority", "judge"):
        return vote(last, {}, session, rule.name)
    if rule.name == "weighted":
        weights = {a: float(d.get("weight", 1.0)) for a, d in topology.nodes(data=True)}
        return vote(last, weights, session, "weighted")
    if rule.name == "chain_tail":
        who = topology.generations()[-1][-1]
    else:
        root = _root(topology)
        assert root is not None
        who = root
    t = by_agent.get(who)
    return Decision(
        method=rule.name,
        answer=t.answer if t is not None else None,
        decider=who,
        note="" if t is not None and t.ok else f"{who} did not answer",
    )
