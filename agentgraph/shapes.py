"""Test-time-scaling shapes as teams: self-consistency, best-of-N, beam search, cascades.

Every shape runs on the scheduler like any team — the same sessions, transcripts, token accounting,
retries and all-in-flight batching — so a shape and a debate are compared on equal terms.

- ``sc:N`` — ``N`` independent samples of one role, one round, plurality vote (agents ``a0…``).
- ``bon:N`` — ``N`` candidates ``a{i}``; grader ``g{i}`` scores candidate ``a{i}`` with a number in
  ``\\boxed{}`` (parsed strictly); the best-scored answer decides. Candidates are ``agent`` turns,
  graders ``score`` turns (``turn.score``).
- ``beam:KxD[xB]`` — :class:`Beam`: ``K`` partial solutions kept, each extended by ``B`` proposers
  per step (default 2), every proposal scored by a grader, ``D`` steps; the best-scored finished
  solution decides. Round = depth; ``p{j}`` are proposals, ``g{j}`` their grades, a turn's
  ``read`` is its path.
- ``cascade:A+B[+C]`` — :class:`Cascade`: run stage A; escalate to B only when A has no answer,
  its answers disagree (agreement below ``min_agreement``) or its grader score is below
  ``min_score``. Stage ``i``'s agents are ``s{i}.…`` and its rounds follow the earlier stages'
  in the transcript; ``decision.stage`` says which stage decided, ``decision.stage_answers``
  what each stage reached.

Choices written down here: ties between best-scored candidates go to a vote among the tied;
unparseable scores rank below every parseable one; with no parseable score at all the candidates
vote (and the decision's note says so). A beam proposal that already gives an answer is finished:
it is a candidate and is not extended. A single-agent cascade stage agrees with itself, so it
escalates only on a missing answer or a low score.

Examples
--------
>>> import asyncio
>>> import agentgraph as ag
>>> team = ag.shape("cascade:sc:3+full:3")
>>> team.describe()
'cascade:sc:3+full:3, 6 agents, cascade sc:3 → full:3 (escalate if agreement < 1)'
>>> agree = ag.backends.Scripted(default=lambda call: "\\\\boxed{7}")
>>> r = asyncio.run(ag.solve(team, "3 + 4?", agree, gold="7"))
>>> r.answer, r.decision.stage, r.usage.requests
('7', 0, 3)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from agentgraph.answers import answer_key
from agentgraph.builders import from_spec, self_consistency
from agentgraph.errors import ConfigError
from agentgraph.messages import Decision, Turn
from agentgraph.prompts import view
from agentgraph.scheduler import Session
from agentgraph.team import Team
from agentgraph.topology import Topology
from agentgraph.voting import best_scored


@dataclass(frozen=True)
class Beam:
    """Beam search over agents: ``k`` kept partial solutions, ``branch`` proposals each, ``depth``
    steps; graders score every proposal; the best-scored finished solution decides."""

    k: int
    depth: int
    branch: int = 2
    proposer: str = "stepper"
    grader: str = "grader"
    finisher: str = "finisher"
    prefix: str = ""

    @property
    def name(self) -> str:
        return f"beam search k={self.k}, depth={self.depth}, branch={self.branch}"

    async def run(self, session: Session) -> tuple[Decision, int, bool]:
        roles = session.team.roles
        grader = roles[self.grader]
        frontier: list[list[Turn]] = [[]]
        candidates: list[Turn] = []
        scores: dict[str, list[float]] = {}
        rounds_run = 0
        for d in range(self.depth):
            role = roles[self.finisher if d == self.depth - 1 else self.proposer]
            slots = [
                (j, frontier[j // self.branch] if d else [])
                for j in range(self.k * self.branch)
                if not d or j // self.branch < len(frontier)
            ]
            proposals = await asyncio.gather(
                *(
                    session.speak(f"{self.prefix}p{j}", role, d, "agent", [view(t, "spatial") for t in path])
                    for j, path in slots
                )
            )
            done = [(j, path, p) for (j, path), p in zip(slots, proposals, strict=True) if p.ok]
            grades = await asyncio.gather(
                *(
                    session.speak(
                        f"{self.prefix}g{j}", grader, d, "agent", [view(t, "spatial") for t in [*path, p]]
                    )
                    for j, path, p in done
                )
            )
            rounds_run = d + 1
            ranked: list[tuple[float, int, list[Turn]]] = []
            for (j, path, p), g in zip(done, grades, strict=True):
                if g.score is not None:
                    scores[p.id] = [g.score]
                if p.answer is not None:
                    candidates.append(p)  # finished: a candidate, not extended
                else:
                    ranked.append((g.score if g.score is not None else float("-inf"), j, [*path, p]))
            ranked.sort(key=lambda x: (-x[0], x[1]))
            frontier = [path for _, _, path in ranked[: self.k]]
            if not frontier:
                break
        if not candidates:
            decision = Decision(method="beam", answer=None, note="no proposal reached an answer")
        else:
            decision = best_scored(candidates, scores, session.session, "beam")
        return decision, rounds_run, rounds_run < self.depth


@dataclass(frozen=True)
class Cascade:
    """Budget-adaptive compute: run the stages in order, stopping at the first that is sure enough.

    A stage escalates to the next when it has no answer, when the share of its last-round answers
    that agree with its decision is below ``min_agreement``, or (when ``min_score`` is set and the
    stage is graded) when the score of its decision is below ``min_score`` or unparseable.
    """

    stages: tuple[Team, ...]
    specs: tuple[str, ...]
    min_agreement: float = 1.0
    min_score: float | None = None

    @property
    def name(self) -> str:
        rule = f"agreement < {self.min_agreement:g}"
        if self.min_score is not None:
            rule += f" or score < {self.min_score:g}"
        return f"cascade {' → '.join(self.specs)} (escalate if {rule})"

    def escalation(self, decision: Decision, last: Sequence[Turn], graded: bool) -> str | None:
        """Why a stage's decision is not final (``None``: it is)."""
        if decision.answer is None:
            return "no answer"
        key = answer_key(decision.answer)
        agreement = sum(answer_key(t.answer) == key for t in last) / max(1, len(last))
        if agreement < self.min_agreement:
            return f"agreement {agreement:.2f} < {self.min_agreement:g}"
        if self.min_score is not None and graded:
            if decision.score is None:
                return "no parseable score"
            if decision.score < self.min_score:
                return f"score {decision.score:g} < {self.min_score:g}"
        return None

    async def run(self, session: Session) -> tuple[Decision, int, bool]:
        offset, i = 0, 0
        answers: list[str | None] = []
        notes: list[str] = []
        decision = Decision(method="cascade", answer=None)
        for i, stage in enumerate(self.stages):
            decision, rounds_run, _ = await session.child(stage, offset).play()
            offset += rounds_run
            answers.append(decision.answer)
            agents = set(stage.agents)
            mine = [t for t in session.turns if t.agent in agents]
            last = [t for t in mine if t.kind == "agent" and t.round == offset - 1]
            why = self.escalation(decision, last, any(t.kind == "score" for t in mine))
            if why is None or i == len(self.stages) - 1:
                if why is not None:
                    notes.append(f"the last stage decided although {why}")
                break
            notes.append(f"stage {i} ({self.specs[i]}) escalated: {why}")
        decision.stage = i
        decision.stage_answers = answers
        decision.note = "; ".join([*notes, decision.note] if decision.note else notes)
        return decision, offset, False


def _relabelled(topology: Topology, prefix: str) -> Topology:
    g: Topology = nx.relabel_nodes(topology, {a: f"{prefix}{a}" for a in topology.agents}, copy=True)
    return g


def _beam_of(topology: Topology, prefix: str = "") -> Beam:
    gr = topology.graph
    return Beam(
        k=int(gr["beam_k"]),
        depth=int(gr["rounds"]),
        branch=int(gr["beam_branch"]),
        proposer=str(gr["proposer"]),
        finisher=str(gr["finisher"]),
        prefix=prefix,
    )


def shape(
    spec: str,
    *,
    role: str = "solver",
    rounds: int | None = None,
    min_agreement: float = 1.0,
    min_score: float | None = None,
    **team: Any,
) -> Team:
    """A :class:`~agentgraph.Team` from any spec: the topology specs of
    :func:`~agentgraph.from_spec`, the shapes ``sc:N``, ``bon:N``, ``beam:KxD[xB]`` and
    ``cascade:A+B[+C…]``.

    Parameters
    ----------
    spec : str
        The shape.
    role : str
        The answering agents' role card.
    rounds : int, optional
        Rounds of topologies that do not fix their own (the shapes do; for them it is ignored).
    min_agreement, min_score
        A cascade's escalation rule (see :class:`Cascade`).
    **team
        Everything else :class:`~agentgraph.Team` takes (decision, sampling, roles, preset, …),
        applied to every stage of a cascade.

    Examples
    --------
    >>> shape("bon:4").describe()
    'bon:4, 8 agents, 1 rounds, inter-round full, decision best_score'
    >>> shape("beam:2x3").describe()
    'beam:2x3x2, 8 agents, beam search k=2, depth=3, branch=2'
    """
    text = spec.strip()
    if not text.startswith("cascade:"):
        return team_of(from_spec(text, role=role), rounds, **team)
    parts = [p.strip() for p in text.removeprefix("cascade:").split("+")]
    if len(parts) < 2 or not all(parts) or any(p.startswith("cascade:") for p in parts):
        raise ConfigError(
            "topology", f"cannot parse {spec!r}", "use cascade:A+B[+C], e.g. cascade:sc:3+full:3"
        )
    if not 0.0 <= min_agreement <= 1.0:
        raise ConfigError("min_agreement", f"{min_agreement} is not in [0, 1]", "e.g. 1.0 (any disagreement)")
    stages = tuple(
        team_of(_relabelled(from_spec(p, role=role), f"s{i}."), rounds, prefix=f"s{i}.", **team)
        for i, p in enumerate(parts)
    )
    union = Topology(name=f"cascade:{'+'.join(parts)}", strategy="cascade")
    for s in stages:
        union.add_nodes_from(s.topology.nodes(data=True))
        union.add_edges_from(s.topology.edges(keys=True, data=True))
    cascade = Cascade(stages, tuple(parts), min_agreement, min_score)
    return Team(union, rounds=sum(s.rounds for s in stages), strategy=cascade, **team)


def team_of(topology: Topology, rounds: int | None = None, *, prefix: str = "", **team: Any) -> Team:
    """A team on ``topology``: ``rounds`` applies unless the topology fixes its own (the shapes
    do); a beam's slots get their search strategy (agents named with ``prefix``, as a cascade
    stage renames them)."""
    if topology.graph.get("strategy") == "beam":
        return Team(topology, strategy=_beam_of(topology, prefix), **team)
    own = topology.graph.get("rounds") is not None
    return Team(topology, rounds=None if own else rounds, **team)


def self_consistency_like(team: Team, n: int, role: str | None = None) -> Team:
    """``sc:n`` with the settings of ``team`` (role book, preset, sampling, thinking, sharing,
    retries, adapters): the baseline a matched-budget comparison runs beside it. ``role`` defaults
    to the first answering agent's role of ``team``."""
    if role is None:
        answering = [a for a in team.agents if team.role(a).answer_format == "boxed"]
        role = team.role(answering[0]).name if answering else "solver"
    return Team(
        self_consistency(n, role),
        roles=team.roles,
        sampling=team.sampling,
        share=team.share,
        think=team.think,
        overflow=team.overflow,
        preset=team.preset,
        retry=team.retry,
        adapters=team.adapters,
        on_error=team.on_error,
    )


__all__ = ["Beam", "Cascade", "self_consistency_like", "shape", "team_of"]
