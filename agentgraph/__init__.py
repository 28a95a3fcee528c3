"""agentgraph: teams of small reasoning models on networkx graphs, served by vLLM, trained with GRPO.

Everything the README's examples use is here::

    import agentgraph as ag

    team = ag.Team(ag.full(3), rounds=2, inter_round="summarize", decision="majority")
    async with ag.backends.VLLM() as engine:          # embedded default model
        result = await ag.solve(team, "Tom has 3 apples and buys 4 more. How many?", engine)
    print(result.answer, result.usage.completion_tokens)

The trainers (``ag.GraphGRPOTrainer``, ``ag.RoleGRPOTrainer``, ``ag.JointTrainer`` and their configs)
are imported on first use, so ``import agentgraph`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentgraph import backends
from agentgraph.core.answers import answer_key, extract, is_correct
from agentgraph.core.errors import BackendError, ConfigError
from agentgraph.core.messages import ChatMessage, Decision, Turn, Usage
from agentgraph.core.retry import RetryPolicy
from agentgraph.core.sampling import Sampling, SamplingOverrides
from agentgraph.engine.scheduler import solve, solve_many
from agentgraph.engine.transcript import SessionResult, TranscriptWriter, load
from agentgraph.eval.datasets import Problem, load_dataset
from agentgraph.eval.evaluation import compare, evaluate
from agentgraph.eval.metrics import Metrics
from agentgraph.graph.generators import chain, full, layered, pruned, random_graph, single, star, tree
from agentgraph.graph.scaling import beam, best_of, self_consistency
from agentgraph.graph.specs import from_spec
from agentgraph.graph.topology import Topology
from agentgraph.protocol.decisions import DecisionRule
from agentgraph.protocol.inter_round import InterRound
from agentgraph.roles.book import Role, RoleBook
from agentgraph.shapes.build import Beam, Cascade, shape
from agentgraph.team.team import Team

if TYPE_CHECKING:
    from agentgraph.train import (
        GraphGRPOConfig,
        GraphGRPOTrainer,
        JointConfig,
        JointTrainer,
        RoleGRPOConfig,
        RoleGRPOTrainer,
    )

__version__ = "0.1.0"

_TRAINERS = (
    "GraphGRPOConfig",
    "GraphGRPOTrainer",
    "JointConfig",
    "JointTrainer",
    "RoleGRPOConfig",
    "RoleGRPOTrainer",
)


def __getattr__(name: str) -> Any:
    if name in _TRAINERS:  # torch, transformers and peft load only when a trainer is asked for
        return getattr(importlib.import_module("agentgraph.train"), name)
    raise AttributeError(f"module 'agentgraph' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "Beam",
    "Cascade",
    "ChatMessage",
    "ConfigError",
    "Decision",
    "DecisionRule",
    "GraphGRPOConfig",
    "GraphGRPOTrainer",
    "InterRound",
    "JointConfig",
    "JointTrainer",
    "Metrics",
    "Problem",
    "RetryPolicy",
    "Role",
    "RoleBook",
    "RoleGRPOConfig",
    "RoleGRPOTrainer",
    "Sampling",
    "SamplingOverrides",
    "SessionResult",
    "Team",
    "Topology",
    "TranscriptWriter",
    "Turn",
    "Usage",
    "answer_key",
    "backends",
    "beam",
    "best_of",
    "chain",
    "compare",
    "evaluate",
    "extract",
    "from_spec",
    "full",
    "is_correct",
    "layered",
    "load",
    "load_dataset",
    "pruned",
    "random_graph",
    "self_consistency",
    "shape",
    "single",
    "solve",
    "solve_many",
    "star",
    "tree",
]
