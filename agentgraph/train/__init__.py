"""Trainers: graph GRPO on edge logits (``GraphGRPOTrainer``)."""

from agentgraph.train.graph import GraphGRPOConfig, GraphGRPOTrainer, StepLog

__all__ = ["GraphGRPOConfig", "GraphGRPOTrainer", "StepLog"]
