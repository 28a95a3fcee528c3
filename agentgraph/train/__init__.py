"""Trainers: graph GRPO on edge logits (``GraphGRPOTrainer``), role GRPO on per-role LoRA adapters
(``RoleGRPOTrainer``), both together (``JointTrainer``).

One module per concern: ``config`` (every setting, with help), ``base`` (what every trainer
shares), ``credit`` (rewards and group advantages), ``policies/`` (the edge policy of graph GRPO,
the LoRA policy of role GRPO), ``adapters`` (save, publish, export, load), ``loop`` (progress, step
log, checkpoint cadence), ``checkpoint`` (role checkpoints and export), ``selection`` (graph GRPO's
final graph), ``guard`` (rollback to the best adapters), ``curves`` (learning-curve plots),
``elsewhere`` (the backend of a process that does not generate), and one module per trainer.

The names below load on first use (PEP 562): ``config`` and ``adapters`` import no torch, so the CLI
and ``agentgraph show`` start without it; a trainer brings torch, transformers and peft in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentgraph.train.adapters import load_adapters
    from agentgraph.train.checkpoint import RoleStepLog
    from agentgraph.train.config import GraphGRPOConfig, JointConfig, RoleGRPOConfig
    from agentgraph.train.graph import GraphGRPOTrainer, StepLog
    from agentgraph.train.joint import JointStep, JointTrainer
    from agentgraph.train.loss import grpo_loss
    from agentgraph.train.mixed_roles import MixedRoleGRPOTrainer, role_trainer
    from agentgraph.train.roles import RoleGRPOTrainer

_WHERE = {
    "load_adapters": "adapters",
    "GraphGRPOConfig": "config",
    "JointConfig": "config",
    "RoleGRPOConfig": "config",
    "GraphGRPOTrainer": "graph",
    "StepLog": "graph",
    "JointStep": "joint",
    "JointTrainer": "joint",
    "grpo_loss": "loss",
    "RoleGRPOTrainer": "roles",
    "MixedRoleGRPOTrainer": "mixed_roles",
    "role_trainer": "mixed_roles",
    "RoleStepLog": "checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"agentgraph.train.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'agentgraph.train' has no attribute {name!r}")


__all__ = [
    "GraphGRPOConfig",
    "GraphGRPOTrainer",
    "JointConfig",
    "JointStep",
    "JointTrainer",
    "MixedRoleGRPOTrainer",
    "RoleGRPOConfig",
    "RoleGRPOTrainer",
    "RoleStepLog",
    "StepLog",
    "grpo_loss",
    "load_adapters",
    "role_trainer",
]
