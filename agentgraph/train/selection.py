"""Graph GRPO's final graph, chosen by running graphs rather than by thresholding probabilities.

A learned edge probability says how often sampling the edge helped *while every other edge was
sampled too*; the graph that does best alone can differ. So the candidates are run, each on the same
problems under the same session ids: a seeded backend then draws the same samples for each (common
random numbers) and two graphs are compared by the paired per-problem difference of their rewards.

1. **Nested candidates** (the k most probable edges, every k): the best of them, ties going to more
   edges — removal takes the idle ones out later, while starting from fewer can strand the search
   (see 4).
2. **Addition**, most probable absent edge first: an edge comes in when the graph with it does
   better. The learner can push a needed edge down — a later agent's edge to the decision is cut
   while adversaries still persuade that agent, and once it is cut nothing rewards cutting the
   adversaries' edges into it — a local optimum that no removal leaves.
3. **Removal**, least probable edge first: an edge goes when the graph without it does at least as
   well. When agents can be persuaded, edges between good agents keep a positive gradient while the
   edges to the decision are still being sampled (they route a good answer around a dropped edge),
   so the threshold keeps them and the votes correlate.
4. Steps 2–3 again (at most ``rounds`` times) while either changed the graph: an edge can help only
   once another is gone (a truthful agent's vote, once the adversaries' edges into it are cut), and
   votes come in pairs (with plurality voting and random ties two voters do no better than one,
   three do), which is why addition runs before the first removal as well as after it.

``se`` asks an edge to win by more than that many standard errors of the paired difference
(Breiman's one-standard-error rule). It defaults to 0 (any gain) because on 200 selection problems
the margin cost more than it saved: measured on the persuadable 5 + 3 setting, it kept out needed
decision edges (a 0.03 gain is ~1.5 standard errors there) more often than it kept out correlated
ones (``docs/benchmarks.md``, "Robust graph learning").
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence

import numpy as np

from agentgraph.graph.topology import Topology

EdgeKey = tuple[str, str, str]
Score = Callable[[Topology], Awaitable[np.ndarray]]


def better(a: np.ndarray, b: np.ndarray, se: float) -> bool:
    """Per-problem rewards ``a`` beat ``b`` by more than ``se`` standard errors of the paired difference."""
    d = a - b
    err = float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return float(d.mean()) > max(se * err, 1e-9)


async def stepwise(
    candidates: Sequence[Topology],
    pool: Sequence[EdgeKey],
    base: Topology,
    prob: Callable[[EdgeKey], float],
    score: Score,
    *,
    kinds: Sequence[str],
    se: float = 0.0,
    rounds: int = 2,
) -> Topology:
    """The chosen graph: the best nested candidate, then additions from ``pool`` (edges of ``base``)
    and removals of learnable edges of ``kinds``, ordered by ``prob``; ``score`` runs a graph and
    returns its per-problem rewards (the same problems, in the same order, for every graph)."""

    def by_p(edges: Iterable[EdgeKey], reverse: bool = False) -> list[EdgeKey]:
        return sorted(edges, key=prob, reverse=reverse)

    async def additions(best: Topology, best_r: np.ndarray) -> tuple[Topology, np.ndarray, bool]:
        added = False
        absent = [e for e in pool if e[0] in best and e[1] in best and not best.has_edge(*e)]
        for e in by_p(absent, reverse=True):
            trial = best.copy()
            p = min(max(prob(e), 1e-9), 1 - 1e-9)  # the learned logit, so removal treats it as learned
            trial.add_edge(*e[:2], key=e[2], **{**base.edges[e], "logit": math.log(p / (1 - p))})
            r = await score(trial)
            if better(r, best_r, se):
                best, best_r, added = trial, r, True
        return best, best_r, added

    async def removals(best: Topology, best_r: np.ndarray) -> tuple[Topology, np.ndarray, bool]:
        removed = False
        learned = [e for e in best.edges(keys=True) if e[2] in kinds and best.edges[e]["logit"] is not None]
        for e in by_p(learned):
            trial = best.keep_edges(x for x in best.edges(keys=True) if x != e)
            r = await score(trial)
            if not better(best_r, r, se):
                best, best_r, removed = trial, r, True
        return best, best_r, removed

    scores = [await score(g) for g in candidates]
    k = max(range(len(candidates)), key=lambda i: (round(float(scores[i].mean()), 9), i))
    best, best_r = candidates[k], scores[k]
    for _ in range(rounds):
        best, best_r, added = await additions(best, best_r)
        best, best_r, removed = await removals(best, best_r)
        if not (added or removed):
            break
    return best
