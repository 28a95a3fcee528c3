"""Test doubles shipped for users' own tests and simulations: :class:`Faulty` injects faults
reproducibly around any backend. Nothing in the library imports this package.
"""

from agentgraph.testing.faulty import Faulty

__all__ = ["Faulty"]
