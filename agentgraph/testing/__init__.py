"""Test doubles shipped for users' own tests and simulations: :class:`Faulty` injects faults
reproducibly around any backend; :func:`~agentgraph.testing.tiny.tiny_model` builds a tiny
random-weight Qwen2 (a second real model for mixed teams, a stand-in for a hub model). Nothing in
the library imports this package.
"""

from agentgraph.testing.faulty import Faulty

__all__ = ["Faulty"]
