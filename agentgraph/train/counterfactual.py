"""The counterfactual sessions of leave-one-out credit (``GraphGRPOConfig.credit``).

Each sampled graph is run again without one agent at a time, under the real session's id: a seeded
backend (the scripted one; an engine with per-request seeds) then draws the same for every agent
that stays, so ``r(g) − r(g without v)`` measures what ``v`` did rather than the sampling noise of
two unrelated runs (common random numbers). The cost is one session per left-out agent per graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from agentgraph.backends.base import Backend
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem
from agentgraph.graph.topology import Topology
from agentgraph.team.team import Team


async def without_each(
    graphs: Sequence[Sequence[Topology]],
    batch: Sequence[Problem],
    agents: Sequence[str],
    make_team: Callable[[Topology], Team],
    backend: Backend,
    session_id: Callable[[int, int], str],
) -> list[list[dict[str, SessionResult]]]:
    """Per problem ``i`` of ``batch``, per graph ``j`` of ``graphs[i]``: agent → the session of that
    graph without the agent (each of ``agents`` the graph has), all in flight at once, under
    ``session_id(i, j)``."""
    slots: list[tuple[int, int, str]] = []
    runs = []
    for i, (p, group) in enumerate(zip(batch, graphs, strict=True)):
        for j, g in enumerate(group):
            for v in agents:
                if v not in g:
                    continue  # dropped from this graph: it made no difference to leave out
                h = g.copy()
                h.remove_node(v)
                slots.append((i, j, v))
                runs.append(
                    scheduler.solve(
                        make_team(h), p.question, backend, gold=p.answer, session_id=session_id(i, j)
                    )
                )
    out: list[list[dict[str, SessionResult]]] = [[{} for _ in group] for group in graphs]
    for (i, j, v), r in zip(slots, await asyncio.gather(*runs), strict=True):
        out[i][j][v] = r
    return out
