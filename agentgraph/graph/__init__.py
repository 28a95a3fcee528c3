"""The communication graph: :class:`Topology` (a ``networkx.MultiDiGraph``), its JSON form
(:mod:`~agentgraph.graph.readwrite`), drawing, the networkx-style generators and the spec parser.
"""
