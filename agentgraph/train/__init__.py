"""Trainers: graph GRPO on edge logits (``GraphGRPOTrainer``), role GRPO on per-role LoRA adapters
(``RoleGRPOTrainer``), both together (``JointTrainer``).

One module per concern: ``config`` (every setting, with help), ``credit`` (rewards and group
advantages), ``policy`` (the LoRA policy, log-probs, the update), ``adapters`` (save, publish,
export, load), ``loop`` (progress, step log, checkpoint cadence, atomic writes), ``checkpoint`` (role
checkpoints), ``selection`` (graph GRPO's final graph), ``guard`` (rollback to the best adapters),
``curves`` (learning-curve plots), and one module per trainer over them.
"""

from agentgraph.train.adapters import load_adapters
from agentgraph.train.config import GraphGRPOConfig, JointConfig, RoleGRPOConfig
from agentgraph.train.graph import GraphGRPOTrainer, StepLog
from agentgraph.train.joint import JointStep, JointTrainer
from agentgraph.train.loss import grpo_loss
from agentgraph.train.roles import RoleGRPOTrainer, RoleStepLog

__all__ = [
    "GraphGRPOConfig",
    "GraphGRPOTrainer",
    "JointConfig",
    "JointStep",
    "JointTrainer",
    "RoleGRPOConfig",
    "RoleGRPOTrainer",
    "RoleStepLog",
    "StepLog",
    "grpo_loss",
    "load_adapters",
]
