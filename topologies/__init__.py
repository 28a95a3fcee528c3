"""Topology builders and named presets, as the design card lays them out.

The builders live in :mod:`agentgraph.builders` (and ``import agentgraph as ag`` gives them as
``ag.chain``, ``ag.full``, …); this package re-exports them so ``from topologies import full`` keeps
working.
"""

from agentgraph.builders import (
    chain,
    from_spec,
    full,
    layered,
    pruned,
    random_graph,
    single,
    star,
    tree,
)

__all__ = ["chain", "from_spec", "full", "layered", "pruned", "random_graph", "single", "star", "tree"]
