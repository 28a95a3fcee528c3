"""The edge policy of graph GRPO: one keep-logit per learnable edge (and, with agent dropout, per
agent), the graphs it samples, their log-probability and entropy, iterative magnitude pruning and
the deterministic graphs it implies (thresholded, or the nested most-probable-k graphs that
selection tries).

:class:`EdgePolicy` is the policy half of :class:`~agentgraph.train.graph.GraphGRPOTrainer` (a mixin:
the trainer's ``logits``, ``active`` and ``probabilities()`` are the policy's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from agentgraph.core.errors import ConfigError
from agentgraph.graph.topology import Topology
from agentgraph.train.config import GraphGRPOConfig

EdgeKey = tuple[str, str, str]


def edge_name(e: EdgeKey) -> str:
    return f"{e[0]}->{e[1]} ({e[2]})"


class EdgePolicy:
    base: Topology
    config: GraphGRPOConfig
    edges: list[EdgeKey]
    roots: frozenset[str]  # the base's nodes marked root=True
    agents: list[str]
    logits: torch.Tensor
    agent_logits: torch.Tensor
    active: torch.Tensor
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    step: int

    def init_edges(self, base: Topology, c: GraphGRPOConfig) -> None:
        self.edges = [(u, v, k) for u, v, k in base.edges(keys=True) if k in c.learn]
        self.roots = frozenset(str(a) for a, d in base.nodes(data=True) if d.get("root"))
        if not self.edges:
            raise ConfigError("base", "the base topology has no learnable edges", "use a base with edges")
        for a in c.fixed_agents:
            if a not in base:
                raise ConfigError(
                    "fixed_agents", f"{a!r} is not an agent of the base", "name existing agents"
                )
        self.agents = [a for a in base.agents if a not in c.fixed_agents] if c.agent_dropout else []
        self.logits = torch.full((len(self.edges),), float(c.init_logit), requires_grad=True)
        self.agent_logits = torch.full((len(self.agents),), 3.0, requires_grad=True)  # start with agents kept
        params = [self.logits] + ([self.agent_logits] if self.agents else [])
        self.optimizer = torch.optim.Adam(params, lr=c.learning_rate)
        self.active = torch.ones(len(self.edges), dtype=torch.bool)  # iterative pruning masks
        self.rng = np.random.default_rng(c.seed)

    def probabilities(self) -> dict[str, float]:
        with torch.no_grad():
            p = torch.sigmoid(self.logits) * self.active
        return {edge_name(e): float(x) for e, x in zip(self.edges, p, strict=True)}

    def sampling_probabilities(self) -> torch.Tensor:
        """q per edge, the probability an edge is sampled: sigmoid(logit), or with ``explore`` ε the
        mixture ε + (1 − 2ε)·sigmoid(logit) — the distribution the rollouts really come from."""
        eps = self.config.explore
        p = torch.sigmoid(self.logits)
        return p if not eps else eps + (1 - 2 * eps) * p

    def sampling_log_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log q, log(1 − q))`` per edge, so the likelihood-ratio gradient is taken under the
        distribution the graphs were sampled from (log-sigmoid when ε is 0: stable at large logits)."""
        if not self.config.explore:
            return torch.nn.functional.logsigmoid(self.logits), torch.nn.functional.logsigmoid(-self.logits)
        q = self.sampling_probabilities()
        return torch.log(q), torch.log1p(-q)

    def sample(self) -> tuple[Topology, torch.Tensor, torch.Tensor]:
        """A realized graph with its edge mask and agent mask."""
        with torch.no_grad():
            p = (self.sampling_probabilities() * self.active).numpy()
            pa = torch.sigmoid(self.agent_logits).numpy()
        edge_mask = torch.from_numpy(self.rng.random(len(self.edges)) < p)
        agent_mask = torch.from_numpy(self.rng.random(len(self.agents)) < pa)
        dropped = {a for a, kept in zip(self.agents, agent_mask.tolist(), strict=True) if not kept}
        keep = [e for e, m in zip(self.edges, edge_mask.tolist(), strict=True) if m]
        fixed = [e for e in self.base.edges(keys=True) if e[2] not in self.config.learn]
        g = self.base.keep_edges([*keep, *fixed])
        if dropped:
            g.remove_nodes_from(dropped)
        return g, edge_mask, agent_mask

    def log_prob(self, edge_mask: torch.Tensor, agent_mask: torch.Tensor) -> torch.Tensor:
        return self.edge_log_probs(edge_mask).sum() + self.agent_log_prob(agent_mask)

    def edge_log_probs(self, edge_mask: torch.Tensor) -> torch.Tensor:
        """Per learnable edge, the log-probability of its sampled state (0 for a pruned edge: it is
        never sampled, so it gets no gradient)."""
        m = edge_mask.float()
        keep, cut = self.sampling_log_probs()
        return (m * keep + (1 - m) * cut) * self.active

    def agent_log_prob(self, agent_mask: torch.Tensor) -> torch.Tensor:
        """The log-probability of the sampled agent mask (0 without agent dropout)."""
        if not self.agents:
            return torch.zeros(())
        am = agent_mask.float()
        ls = torch.nn.functional.logsigmoid
        return (am * ls(self.agent_logits) + (1 - am) * ls(-self.agent_logits)).sum()

    def entropy(self) -> torch.Tensor:
        """Mean Bernoulli entropy of the active edges' (and agents') keep-probabilities, in nats."""

        def h(logits: torch.Tensor) -> torch.Tensor:
            p, ls = torch.sigmoid(logits), torch.nn.functional.logsigmoid
            return -(p * ls(logits) + (1 - p) * ls(-logits))

        terms = [h(self.logits)[self.active]]
        if self.agents:
            terms.append(h(self.agent_logits))
        return torch.cat(terms).mean()

    def pruned(self) -> Topology:
        """The deterministic evaluation graph: learned probabilities, then threshold / top-k."""
        c = self.config
        g: Topology = self.base.copy()
        with torch.no_grad():
            for e, lg, act in zip(self.edges, self.logits.tolist(), self.active.tolist(), strict=True):
                g.edges[e]["logit"] = float(lg) if act else -50.0
            if self.agents:
                gone = [a for a, lg in zip(self.agents, self.agent_logits.tolist(), strict=True) if lg < 0]
                g.remove_nodes_from(gone)
        g.graph["name"] = f"learned({self.base.graph.get('name', 'topology')})"
        if c.prune_keep is not None:
            return g.prune(keep=c.prune_keep, kinds=c.learn)
        return g.prune(threshold=c.prune_threshold if c.prune_threshold is not None else 0.5, kinds=c.learn)

    def candidates(self) -> list[Topology]:
        """The nested graphs :meth:`select` tries: the k most probable active edges, k = 0, 1, …"""
        c = self.config
        g: Topology = self.base.copy()
        with torch.no_grad():
            p = (torch.sigmoid(self.logits) * self.active).tolist()
        for e, lg in zip(self.edges, p, strict=True):
            g.edges[e]["logit"] = math.log(max(lg, 1e-9) / max(1 - lg, 1e-9))
        if self.agents:
            with torch.no_grad():
                g.remove_nodes_from(
                    [a for a, lg in zip(self.agents, self.agent_logits.tolist(), strict=True) if lg < 0]
                )
        n = sum(1 for x in p if x >= c.select_min_p)
        return [g.prune(keep=k, kinds=c.learn) for k in range(n + 1)]

    def stars(self, nested: Sequence[Topology]) -> list[Topology]:
        """The other graphs :meth:`select` starts from, made from the :meth:`candidates` ``nested``:
        the k most probable learnable edges *into the root* (marked ``root=True``) and no other
        learnable edge, k = 1, 2, … — independent voters, the self-consistency shape. Empty when the
        base marks no root."""
        c = self.config
        if not self.roots or not nested:
            return []
        full = nested[-1]  # every active edge at or above select_min_p, with its learned logit
        into = [e for e in full.edges(keys=True) if e[1] in self.roots and e[2] in c.learn]
        into.sort(key=lambda e: -float(full.edges[e]["logit"]))
        fixed = [e for e in full.edges(keys=True) if e[2] not in c.learn or full.edges[e]["logit"] is None]
        return [full.keep_edges([*fixed, *into[:k]]) for k in range(1, len(into) + 1)]

    def _iterative_prune(self) -> None:
        c = self.config
        if not c.prune_ratio or not c.prune_every or self.step % c.prune_every:
            return
        n_active = int(self.active.sum())
        k = max(1, round(c.prune_ratio * n_active))
        if n_active - k < 1:
            return
        with torch.no_grad():
            scores = self.logits.detach().clone()
            scores[~self.active] = math.inf
            drop = torch.argsort(scores)[:k]
            self.active[drop] = False
