"""Topology builders, networkx-style: each function returns a new :class:`~agentgraph.Topology`.

Conventions (so decisions like "chain tail" and "tree root" have one meaning):

- information flows along spatial edges toward the node that decides: in ``chain`` the last agent,
  in ``tree`` and ``star`` the root/hub reads its reports;
- ``full(n)`` is the classic debate (Du et al.): no spatial edges, temporal all-to-all with
  self-loops, so in round r every agent reads every agent's round r−1 answer, its own included;
- every other builder adds temporal self-loops (``memory=True``) so an agent remembers its own last
  answer in multi-round runs; pass ``memory=False`` to leave them out.

The test-time-scaling graphs are in :mod:`~agentgraph.graph.scaling`; the short forms the CLI uses
(``full:3``) are parsed by :func:`agentgraph.graph.specs.from_spec`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from agentgraph.core.errors import ConfigError, check_count
from agentgraph.graph.topology import EdgeKind, Topology, logit


def _memory(g: Topology) -> Topology:
    for a in g.agents:
        g.add_temporal(a, a)
    return g


def single(role: str = "solver", *, memory: bool = True) -> Topology:
    """One agent: the baseline every team is compared with.

    Parameters
    ----------
    role : str
        The agent's role card.
    memory : bool
        Add the temporal self-loop (the agent reads its own last answer in later rounds).

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = single()
    >>> g.agents, g.edges_of("temporal")
    (['a0'], [('a0', 'a0')])
    """
    g = Topology(name="single").add_agent("a0", role)
    return _memory(g) if memory else g


def chain(n: int, role: str = "solver", *, memory: bool = True) -> Topology:
    """``a0 → a1 → … → a{n-1}``: each agent reads the one before it in the same round; the tail decides.

    Parameters
    ----------
    n : int
        Number of agents (≥ 1).
    role : str
        The role card of every agent.
    memory : bool
        Add temporal self-loops.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = chain(3)
    >>> g.edges_of("spatial")
    [('a0', 'a1'), ('a1', 'a2')]
    >>> g.generations()
    [['a0'], ['a1'], ['a2']]
    """
    check_count(n)
    g = Topology(name=f"chain:{n}")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    for i in range(n - 1):
        g.add_spatial(f"a{i}", f"a{i + 1}")
    return _memory(g) if memory else g


def star(n: int, role: str = "solver", hub_role: str = "manager", *, memory: bool = True) -> Topology:
    """``n`` spokes all reporting to one hub (``hub``) in the same round; the hub decides.

    Parameters
    ----------
    n : int
        Number of spokes (≥ 1).
    role, hub_role : str
        Role cards of the spokes and of the hub.
    memory : bool
        Add temporal self-loops.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = star(2)
    >>> g.generations()
    [['a0', 'a1'], ['hub']]
    >>> g.role_of("hub")
    'manager'
    """
    check_count(n)
    g = Topology(name=f"star:{n}")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    g.add_agent("hub", hub_role)
    for i in range(n):
        g.add_spatial(f"a{i}", "hub")
    return _memory(g) if memory else g


def tree(
    branching: int, depth: int, role: str = "solver", manager_role: str = "manager", *, memory: bool = True
) -> Topology:
    """A rooted tree: leaves (``role``) report up to managers; the root ``m`` decides.

    Parameters
    ----------
    branching : int
        Children per manager (≥ 1).
    depth : int
        Edge levels: ``tree(2, 1)`` is a manager with two solvers, ``tree(2, 2)`` has one root
        manager, two middle managers and four solvers.
    role, manager_role : str
        Role cards of the leaves and of the managers.
    memory : bool
        Add temporal self-loops.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = tree(2, 2)
    >>> len(g), g.generations()[-1]
    (7, ['m'])
    >>> sorted(g.spatial_predecessors("m"))
    ['m1', 'm2']
    """
    check_count(branching, "branching")
    check_count(depth, "depth")
    g = Topology(name=f"tree:{branching}x{depth}")
    g.add_agent("m", manager_role, root=True)
    level, leaves, middles = ["m"], 0, 0
    for d in range(1, depth + 1):
        nxt = []
        for parent in level:
            for _ in range(branching):
                if d == depth:
                    child, child_role, leaves = f"a{leaves}", role, leaves + 1
                else:
                    middles += 1
                    child, child_role = f"m{middles}", manager_role
                g.add_agent(child, child_role)
                g.add_spatial(child, parent)
                nxt.append(child)
        level = nxt
    return _memory(g) if memory else g


def full(n: int, role: str = "solver") -> Topology:
    """The classic debate (Du et al.): temporal all-to-all, self-loops included, no spatial edges.

    In round r every agent reads every agent's round r−1 answer, its own included.

    Parameters
    ----------
    n : int
        Number of agents (≥ 1).
    role : str
        The role card of every agent.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = full(3)
    >>> len(g.edges_of("spatial")), len(g.edges_of("temporal"))
    (0, 9)
    >>> g.generations()
    [['a0', 'a1', 'a2']]
    """
    check_count(n)
    g = Topology(name=f"full:{n}")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    for i in range(n):
        for j in range(n):
            g.add_temporal(f"a{i}", f"a{j}")
    return g


def layered(widths: Sequence[int], role: str = "solver", *, memory: bool = True) -> Topology:
    """Layers fully connected to the next one (MacNet's layered DAG); the last layer decides.

    Parameters
    ----------
    widths : sequence of int
        Agents per layer, first to last.
    role : str
        The role card of every agent.
    memory : bool
        Add temporal self-loops.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = layered([2, 1])
    >>> g.edges_of("spatial")
    [('l0a0', 'l1a0'), ('l0a1', 'l1a0')]
    """
    if not widths:
        raise ConfigError("widths", "no layers", "e.g. layered([2, 2, 1])")
    for w in widths:
        check_count(w, "widths")
    g = Topology(name="layered:" + "-".join(str(w) for w in widths))
    names = [[f"l{i}a{j}" for j in range(w)] for i, w in enumerate(widths)]
    for layer in names:
        for a in layer:
            g.add_agent(a, role)
    for up, down in itertools.pairwise(names):
        for u in up:
            for v in down:
                g.add_spatial(u, v)
    return _memory(g) if memory else g


def random_graph(n: int, p: float, seed: int = 0, role: str = "solver", *, memory: bool = True) -> Topology:
    """A random DAG (MacNet's "random" topology; spec ``random:N:P[:SEED]``).

    Each pair ``i < j`` of a random order of the agents gets the spatial edge ``i → j`` with
    probability ``p``. Named ``random_graph``, like networkx's generators, so that a star-import
    does not shadow the standard library's ``random``.

    Parameters
    ----------
    n : int
        Number of agents (≥ 1).
    p : float
        Edge probability in [0, 1].
    seed : int
        Seed of the order and of the edges: the same seed gives the same graph.
    role : str
        The role card of every agent.
    memory : bool
        Add temporal self-loops.

    Returns
    -------
    Topology

    Examples
    --------
    >>> random_graph(6, 0.5, seed=3).same_as(random_graph(6, 0.5, seed=3))
    True
    >>> len(random_graph(6, 1.0).edges_of("spatial"))
    15
    """
    check_count(n)
    if not 0.0 <= p <= 1.0:
        raise ConfigError("p", f"{p} is outside [0, 1]", "use an edge probability")
    rng = np.random.default_rng(seed)
    order = [f"a{i}" for i in rng.permutation(n)]
    g = Topology(name=f"random:{n}:{p}:{seed}")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < p:
                g.add_spatial(order[i], order[j])
    return _memory(g) if memory else g


def pruned(
    base: Topology,
    weights: Mapping[tuple[str, str, EdgeKind], float],
    *,
    threshold: float | None = 0.5,
    keep: int | None = None,
) -> Topology:
    """Set edge probabilities from ``weights`` and keep the edges that clear ``threshold`` (or the
    ``keep`` most probable).

    Parameters
    ----------
    base : Topology
        The graph whose edges are weighed; it is not modified.
    weights : mapping
        ``(source, target, kind)`` → probability in (0, 1); edges not named keep their own logit.
    threshold : float or None
        Keep edges with probability ≥ threshold.
    keep : int or None
        Keep this many edges instead (highest probability first).

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = pruned(chain(3), {("a0", "a1", "spatial"): 0.9, ("a1", "a2", "spatial"): 0.2})
    >>> g.edges_of("spatial")
    [('a0', 'a1')]
    """
    g: Topology = base.copy()
    for (u, v, k), p in weights.items():
        if not g.has_edge(u, v, key=k):
            raise ConfigError("weights", f"edge {u}->{v} ({k}) is not in the base topology", "use its edges")
        g.edges[u, v, k]["logit"] = logit(min(max(p, 1e-6), 1 - 1e-6))
    if keep is not None:
        threshold = None
    g.graph["name"] = f"pruned({base.graph.get('name', 'topology')})"
    pruned_graph: Topology = g.prune(threshold=threshold, keep=keep)
    return pruned_graph


__all__ = [
    "chain",
    "full",
    "layered",
    "pruned",
    "random_graph",
    "single",
    "star",
    "tree",
]
