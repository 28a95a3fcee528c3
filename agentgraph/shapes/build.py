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

from typing import Any

import networkx as nx

from agentgraph.core.errors import ConfigError
from agentgraph.graph.scaling import self_consistency
from agentgraph.graph.specs import from_spec
from agentgraph.graph.topology import Topology
from agentgraph.shapes.strategies import Beam, Cascade
from agentgraph.team.team import Team


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
        grader=str(gr.get("grader", "grader")),
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
    return _cascade(parts, [rounds] * len(parts), role, min_agreement, min_score, **team)


def _cascade(
    parts: list[str],
    stage_rounds: list[int | None],
    role: str,
    min_agreement: float,
    min_score: float | None,
    **team: Any,
) -> Team:
    if not 0.0 <= min_agreement <= 1.0:
        raise ConfigError("min_agreement", f"{min_agreement} is not in [0, 1]", "e.g. 1.0 (any disagreement)")
    role_models = dict(team.pop("role_models", None) or {})
    built = []
    for i, (p, r) in enumerate(zip(parts, stage_rounds, strict=True)):
        g = _relabelled(from_spec(p, role=role), f"s{i}.")
        # each stage gets the role models of its own roles; the union team checks them all
        own = {k: m for k, m in role_models.items() if k in {g.role_of(a) for a in g.agents}}
        built.append(team_of(g, r, prefix=f"s{i}.", role_models=own or None, **team))
    stages = tuple(built)
    team["role_models"] = role_models or None
    # the union graph carries the whole protocol, so a saved cascade loads back as the same team
    union = Topology(
        name=f"cascade:{'+'.join(parts)}",
        strategy="cascade",
        stages=list(parts),
        stage_rounds=[s.rounds for s in stages],
        stage_role=role,
        min_agreement=min_agreement,
        min_score=min_score,
    )
    for s in stages:
        union.add_nodes_from(s.topology.nodes(data=True))
        union.add_edges_from(s.topology.edges(keys=True, data=True))
    cascade = Cascade(stages, tuple(parts), min_agreement, min_score)
    return Team(union, rounds=sum(s.rounds for s in stages), strategy=cascade, **team)


def team_of(topology: Topology, rounds: int | None = None, *, prefix: str = "", **team: Any) -> Team:
    """A team on ``topology``: ``rounds`` applies unless the topology fixes its own (the shapes
    do); a beam's slots get their search strategy (agents named with ``prefix``, as a cascade
    stage renames them)."""
    gr = topology.graph
    if gr.get("strategy") == "beam":
        return Team(topology, strategy=_beam_of(topology, prefix), **team)
    if gr.get("strategy") == "cascade":  # a saved cascade: its stages are rebuilt from their specs
        if prefix:
            raise ConfigError("topology", "a cascade cannot be a stage of another", "flatten the stages")
        return _cascade(
            list(gr["stages"]),
            list(gr["stage_rounds"]),
            str(gr.get("stage_role", "solver")),
            float(gr.get("min_agreement", 1.0)),
            gr.get("min_score"),
            **team,
        )
    own = topology.graph.get("rounds") is not None
    return Team(topology, rounds=None if own else rounds, **team)


def self_consistency_like(team: Team, n: int, role: str | None = None) -> Team:
    """``sc:n`` with the settings of ``team`` (role book, preset, sampling, thinking, sharing,
    retries, adapters): the baseline a matched-budget comparison runs beside it. ``role`` defaults
    to the first answering agent's role of ``team``."""
    if role is None:
        answering = [a for a in team.agents if team.role(a).answer_format == "boxed"]
        role = team.role(answering[0]).name if answering else "solver"
    # every setting of the team's config but its protocol (rounds, decision, strategy, inter-round)
    # the baseline's samples run on the model the answering role runs on
    models = {r: m for r, m in (team.config.role_models or {}).items() if r == role}
    return team.replace(
        self_consistency(n, role),
        role_models=models or None,
        rounds=None,
        decision=None,
        strategy=None,
        inter_round="full",
        early_stop=False,
    )


__all__ = ["Beam", "Cascade", "self_consistency_like", "shape", "team_of"]
