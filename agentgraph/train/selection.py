"""Graph GRPO's final graph, chosen by running graphs rather than by thresholding probabilities.

A learned edge probability says how often sampling the edge helped *while every other edge was
sampled too*; the graph that does best alone can differ. So the candidates are run, each on the same
problems under the same session ids: a seeded backend then draws the same samples for each (common
random numbers) and two graphs are compared by the paired per-problem difference of their rewards.

1. **Nested candidates** (the k most probable edges, every k) and **stars** (the k most probable
   edges into the root and no other learnable edge: independent voters, the self-consistency shape;
   when the base marks a root): the best of them, ties going to the later (more edges among the
   nested; a star over the nested) — removal takes idle edges out later, while starting from fewer
   can strand the search (see 4). The stars are there because the learner can leave edges between
   good agents above the decision edges of others, and then no nested graph is the
   independent-voters graph, and single-edge moves from a correlated graph rarely reach it.
2. **Addition**, most probable absent edge first: an edge comes in when the graph with it does
   better. The learner can push a needed edge down — a later agent's edge to the decision is cut
   while adversaries still persuade that agent, and once it is cut nothing rewards cutting the
   adversaries' edges into it — a local optimum that no removal leaves.
3. **Removal**, edges into earlier agents first (by the base's spatial generations), then the least
   probable: an edge goes when the graph without it does at least as well. Inputs before outputs:
   judged first, an agent's edge to the decision goes when adversaries still persuade it, and once
   it is gone cutting them changes nothing the search can see. When agents can be persuaded, edges
   between good agents keep a positive gradient while the edges to the decision are still being
   sampled (they route a good answer around a dropped edge), so the threshold keeps them and the
   votes correlate.
4. Steps 2–3 again (at most ``rounds`` times) while either changed the graph: an edge can help only
   once another is gone (a truthful agent's vote, once the adversaries' edges into it are cut), and
   votes come in pairs (with plurality voting and random ties two voters do no better than one,
   three do), which is why addition runs before the first removal as well as after it.

5. **A held-out pick** (``GraphGRPOConfig.select_holdout``; by default three times the search's
   problems, as many as the training set has left): the graphs the stages produced are run again
   on problems the search never saw and the best of them is the final graph. The search makes
   ~100 paired comparisons on one problem set, so its last steps are often chance winners (+1
   problem in 200); fresh problems do not inherit that bias, and with the stars among the
   finalists the pick has the independent-voters graph to fall back to.

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

from agentgraph.core.errors import ConfigError
from agentgraph.graph.topology import Topology
from agentgraph.train.config import GraphGRPOConfig

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
    finalists: list[Topology] | None = None,
) -> Topology:
    """The chosen graph: the best nested candidate, then additions from ``pool`` (edges of ``base``)
    and removals of learnable edges of ``kinds``, ordered by ``prob``; ``score`` runs a graph and
    returns its per-problem rewards (the same problems, in the same order, for every graph).
    ``finalists``, when given, receives the best graph after each stage that changed it (the best
    nested candidate first, the chosen graph last) — what a held-out final pick chooses among."""

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

    depth = {a: i for i, generation in enumerate(base.generations()) for a in generation}

    async def removals(best: Topology, best_r: np.ndarray) -> tuple[Topology, np.ndarray, bool]:
        removed = False
        learned = [e for e in best.edges(keys=True) if e[2] in kinds and best.edges[e]["logit"] is not None]
        # inputs before outputs: an agent's edges in are judged before its edge out, so an agent
        # whose persuaders are still wired in is not cut from the vote for their fault
        for e in sorted(learned, key=lambda e: (depth.get(e[1], 0), prob(e))):
            trial = best.keep_edges(x for x in best.edges(keys=True) if x != e)
            r = await score(trial)
            if not better(best_r, r, se):
                best, best_r, removed = trial, r, True
        return best, best_r, removed

    scores = [await score(g) for g in candidates]
    k = last_best([float(r.mean()) for r in scores])
    best, best_r = candidates[k], scores[k]
    kept = [best]
    for _ in range(rounds):
        best, best_r, added = await additions(best, best_r)
        if added:
            kept.append(best)
        best, best_r, removed = await removals(best, best_r)
        if removed:
            kept.append(best)
        if not (added or removed):
            break
    if finalists is not None:
        finalists.extend(kept)
    return best


async def held_out_pick(finalists: Sequence[Topology], score: Score) -> tuple[Topology, list[float]]:
    """The finalist with the best mean reward on problems the search never saw (ties: the later
    finalist, i.e. the search's own choice), and every finalist's mean. A search that makes ~100
    paired comparisons on one problem set keeps some chance winners; judging its few finalists on
    fresh problems does not inherit that selection bias."""
    means = [float((await score(g)).mean()) for g in finalists]
    return finalists[last_best(means)], means


def last_best(means: Sequence[float]) -> int:
    """The index of the best mean; ties (to 9 decimals, past float noise) go to the later one."""
    return max(range(len(means)), key=lambda i: (round(means[i], 9), i))


def holdout_size(c: GraphGRPOConfig, pool: int) -> int:
    """How many problems judge the finalists, of ``pool`` training problems with gold:
    ``select_holdout``, or unset three times ``select_problems`` or as many as are left (a
    ConfigError when a set size has nothing to work on)."""
    left = max(0, pool - c.select_problems) if c.select_problems else 0
    if c.select_holdout is None:
        return min(3 * c.select_problems, left)
    if c.select_holdout and not c.select_problems:
        raise ConfigError(
            "select_holdout",
            "there is no selection to hold out from (select_problems is 0)",
            "set select_problems > 0, or select_holdout 0",
        )
    if c.select_holdout and not left:
        raise ConfigError(
            "select_holdout",
            f"all {pool} training problems go to select_problems ({c.select_problems}): none is left "
            "to judge the finalists on",
            "lower select_problems, give more training problems, or set select_holdout 0",
        )
    return c.select_holdout
