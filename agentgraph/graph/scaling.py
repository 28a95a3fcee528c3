"""Test-time-scaling topologies: self-consistency, best-of-N with graders, and the slots of a beam
search — networkx-style builders returning new :class:`~agentgraph.Topology` graphs that fix their
own protocol (``graph["rounds"]``, ``graph["decision"]``; a beam also ``graph["strategy"]``).
:func:`agentgraph.graph.generators.from_spec` parses their short forms (``sc:5``, ``bon:4``, ``beam:2x3``)
and :func:`agentgraph.shape` builds the teams (a beam needs its search strategy).
"""

from __future__ import annotations

from agentgraph.core.errors import check_count
from agentgraph.graph.topology import Topology


def self_consistency(n: int, role: str = "solver") -> Topology:
    """Self-consistency (``sc:N``): ``n`` independent samples of one role, no edges, one round, majority.

    The shape fixes its protocol (``graph["rounds"] = 1``, ``graph["decision"] = "majority"``): a
    :class:`~agentgraph.Team` built on it runs one round and votes unless told otherwise.

    Parameters
    ----------
    n : int
        Number of samples (≥ 1).
    role : str
        The role card every sample uses.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = self_consistency(5)
    >>> g.graph["name"], len(g.edges()), g.graph["rounds"], g.graph["decision"]
    ('sc:5', 0, 1, 'majority')
    """
    check_count(n)
    g = Topology(name=f"sc:{n}", rounds=1, decision="majority")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    return g


def best_of(n: int, role: str = "solver", grader: str = "grader") -> Topology:
    """Best-of-N with a verifier (``bon:N``): ``n`` candidates ``a{i}``, each read by its own grader
    ``g{i}`` (spatial ``a{i} → g{i}``) that gives a score; the best-scored answer decides
    (``decision="best_score"``: ties go to a vote among the tied, unparseable scores rank last).

    Parameters
    ----------
    n : int
        Number of candidates (≥ 1).
    role : str
        The candidates' role card.
    grader : str
        The graders' role card (``answer_format: score``).

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = best_of(2)
    >>> g.generations(), g.graph["decision"]
    ([['a0', 'a1'], ['g0', 'g1']], 'best_score')
    """
    check_count(n)
    g = Topology(name=f"bon:{n}", rounds=1, decision="best_score")
    for i in range(n):
        g.add_agent(f"a{i}", role)
    for i in range(n):
        g.add_agent(f"g{i}", grader).add_spatial(f"a{i}", f"g{i}")
    return g


def beam(
    k: int,
    depth: int,
    branch: int = 2,
    proposer: str = "stepper",
    grader: str = "grader",
    finisher: str = "finisher",
) -> Topology:
    """Beam search over agents (``beam:KxD[xB]``): the slots of the search, as a graph.

    At each depth every one of the ``k`` kept partial solutions gets ``branch`` proposals (slot
    ``p{j}`` extends kept solution ``j // branch``), grader ``g{j}`` scores proposal ``j``, and the
    ``k`` best continue. The last depth's proposers (and any proposal that already gives an answer)
    finish the solution. Which partial a slot extends is decided while the search runs, so the
    graph carries the candidate temporal edges (every ``p`` to every ``p``); the search itself is
    :class:`agentgraph.shapes.build.Beam` (``agentgraph.shape("beam:2x3")`` builds both).

    Parameters
    ----------
    k, depth, branch : int
        Beam width, search depth (rounds) and proposals per kept solution.
    proposer, grader, finisher : str
        Role cards of the steps, the scores and the last step.

    Returns
    -------
    Topology

    Examples
    --------
    >>> g = beam(2, 3)
    >>> g.graph["name"], len(g), g.graph["rounds"], g.graph["strategy"]
    ('beam:2x3x2', 8, 3, 'beam')
    """
    for value, field in ((k, "k"), (depth, "depth"), (branch, "branch")):
        check_count(value, field)
    g = Topology(name=f"beam:{k}x{depth}x{branch}", rounds=depth, decision="best_score", strategy="beam")
    g.graph.update(beam_k=k, beam_branch=branch, proposer=proposer, grader=grader, finisher=finisher)
    slots = k * branch
    for j in range(slots):
        g.add_agent(f"p{j}", proposer)
    for j in range(slots):
        g.add_agent(f"g{j}", grader).add_spatial(f"p{j}", f"g{j}")
    for i in range(slots):
        for j in range(slots):
            g.add_temporal(f"p{i}", f"p{j}")
    return g


__all__ = ["beam", "best_of", "self_consistency"]
