"""Exact accounting of a session's turns: tokens and requests by agent, model, round and edge.

Every figure is a sum of what the engine reported on the turns (prompt tokens of every request,
generated tokens, the thinking part of them); a failed turn counts its request but no tokens.
An edge ``u->v (how)`` carries the completion tokens of the turns of ``u`` that ``v`` read, by how
they reached it (spatial, temporal, summary, judge). Turns on the backend's default model count
under ``"default"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from agentgraph.core.messages import Turn, Usage

DEFAULT_MODEL = "default"


def account(
    turns: Sequence[Turn],
) -> tuple[Usage, dict[str, Usage], dict[int, Usage], dict[str, int], dict[str, Usage]]:
    """``(total, by_agent, by_round, by_edge, by_model)`` of ``turns``."""
    # plain int counters, one Usage per key at the end (pydantic additions per turn were the
    # largest cost of this function)
    by_agent: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_round: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    total = [0, 0, 0, 0]
    agent_of = {t.id: t for t in turns}
    edges: dict[tuple[str, str, str], int] = defaultdict(int)
    for t in turns:
        p, c, k = (t.prompt_tokens, t.completion_tokens, t.thinking_tokens) if t.ok else (0, 0, 0)
        for acc in (total, by_agent[t.agent], by_round[t.round], by_model[t.model or DEFAULT_MODEL]):
            acc[0] += p
            acc[1] += c
            acc[2] += t.requests
            acc[3] += k
        for rid in t.read:
            src = agent_of[rid]
            how: str
            if t.kind != "agent":
                how = t.kind
            elif src.kind == "summary":
                how = "summary"
            else:
                how = "spatial" if src.round == t.round else "temporal"
            edges[src.agent, t.agent, how] += src.completion_tokens

    def usage(acc: list[int]) -> Usage:
        return Usage(prompt_tokens=acc[0], completion_tokens=acc[1], requests=acc[2], thinking_tokens=acc[3])

    return (
        usage(total),
        {a: usage(acc) for a, acc in by_agent.items()},
        {r: usage(acc) for r, acc in by_round.items()},
        {f"{u}->{v} ({how})": n for (u, v, how), n in edges.items()},
        {m: usage(acc) for m, acc in by_model.items()},
    )
