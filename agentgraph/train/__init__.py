"""Trainers: graph GRPO on edge logits (``GraphGRPOTrainer``), role GRPO on per-role LoRA adapters
(``RoleGRPOTrainer``), both together (``JointTrainer``)."""

from agentgraph.train.graph import GraphGRPOConfig, GraphGRPOTrainer, StepLog
from agentgraph.train.joint import JointConfig, JointStep, JointTrainer
from agentgraph.train.loss import grpo_loss
from agentgraph.train.roles import RoleGRPOConfig, RoleGRPOTrainer, RoleStepLog, load_adapters

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
