"""The communication graph: :class:`Topology` (a ``networkx.MultiDiGraph``), its JSON form
(:mod:`~agentgraph.graph.readwrite`), drawing, the networkx-style generators, the test-time-scaling
graphs and the spec parser (:func:`from_spec`)."""

from agentgraph.graph.generators import chain, full, layered, pruned, random_graph, single, star, tree
from agentgraph.graph.scaling import beam, best_of, self_consistency
from agentgraph.graph.specs import from_spec
from agentgraph.graph.topology import Topology

__all__ = [
    "Topology",
    "beam",
    "best_of",
    "chain",
    "from_spec",
    "full",
    "layered",
    "pruned",
    "random_graph",
    "self_consistency",
    "single",
    "star",
    "tree",
]
