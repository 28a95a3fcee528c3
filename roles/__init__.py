"""Role cards (``roles/cards/*.yaml``) and their loader, as the design card lays them out.

The loader lives in :mod:`agentgraph.roles` (``import agentgraph as ag`` gives ``ag.RoleBook``); this
package holds the built-in cards and re-exports the loader so ``from roles import RoleBook`` keeps
working.
"""

from agentgraph.roles import CARDS_DIR, Role, RoleBook, load_role

__all__ = ["CARDS_DIR", "Role", "RoleBook", "load_role"]
