"""The communication graph of a team, on ``networkx``.

A :class:`Topology` *is* a :class:`networkx.MultiDiGraph`, so every networkx algorithm works on it.
Nodes are agents (attributes ``role``, ``model``, ``adapter``, ``sampling``); each edge has the key
``"spatial"`` (inside a round: the target speaks after the source and reads what it said this round)
or ``"temporal"`` (across rounds: the target reads the source's previous-round message). A pair of
agents may have both. Spatial edges must form a DAG; temporal edges may form any pattern, self-loops
included.

Every edge has a ``logit``. ``None`` means a fixed edge (kept with probability 1); a float ``θ``
means the edge is kept with probability ``sigmoid(θ)`` when a graph is sampled. Sampling draws every
edge independently, so — unlike GPTSwarm's ordered cycle-skipping — there is no order bias: a subset
of a DAG is a DAG, so no edge ever needs to be skipped.

The scheduler runs a topology as it is (every present edge is used); sampling and pruning are how
trainers and users derive realized graphs from a weighted one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from pydantic import ValidationError

from agentgraph.core.atomic import write_text_atomic
from agentgraph.core.errors import ConfigError
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.graph.drawing import draw
from agentgraph.graph.readwrite import PROTOCOL_KEYS, AgentSpec, EdgeSpec, ProtocolSpec, TopologySpec

EdgeKind = Literal["spatial", "temporal"]
EDGE_KINDS: tuple[EdgeKind, EdgeKind] = ("spatial", "temporal")


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ConfigError("probability", f"{p} is not strictly between 0 and 1", "use 0 < p < 1")
    return math.log(p / (1.0 - p))


class Topology(nx.MultiDiGraph):  # type: ignore[misc]
    """Agents plus spatial and temporal edges, each with an optional learnable logit."""

    def __init__(self, incoming_graph_data: Any = None, name: str = "topology", **attr: Any) -> None:
        super().__init__(incoming_graph_data, name=name, **attr)

    # -- building ------------------------------------------------------------------------------
    def add_agent(
        self,
        name: str,
        role: str = "solver",
        *,
        model: str | None = None,
        adapter: str | None = None,
        sampling: SamplingOverrides | dict[str, Any] | None = None,
        **attrs: Any,
    ) -> Topology:
        if not isinstance(name, str) or not name:
            raise ConfigError("agent.name", f"{name!r} is not a non-empty string", "name agents with strings")
        if isinstance(sampling, dict):
            sampling = SamplingOverrides.model_validate(sampling)
        self.add_node(name, role=role, model=model, adapter=adapter, sampling=sampling, **attrs)
        return self

    def _add_edge(self, u: str, v: str, kind: EdgeKind, logit: float | None) -> Topology:
        for end in (u, v):
            if end not in self:
                raise ConfigError(f"{kind} edge {u}->{v}", f"agent {end!r} does not exist", "add_agent first")
        if logit is not None and not math.isfinite(logit):
            raise ConfigError(
                f"{kind} edge {u}->{v}.logit", f"{logit} is not finite", "use None for a fixed edge"
            )
        self.add_edge(u, v, key=kind, logit=logit)
        return self

    def add_spatial(self, u: str, v: str, logit: float | None = None) -> Topology:
        """``v`` speaks after ``u`` in the same round and reads ``u``'s message."""
        if u == v:
            raise ConfigError(f"spatial edge {u}->{v}", "a spatial self-loop is a cycle", "use add_temporal")
        return self._add_edge(u, v, "spatial", logit)

    def add_temporal(self, u: str, v: str, logit: float | None = None) -> Topology:
        """``v`` reads ``u``'s message from the previous round."""
        return self._add_edge(u, v, "temporal", logit)

    # -- views -------------------------------------------------------------------------------
    @property
    def agents(self) -> list[str]:
        return list(self.nodes)

    def role_of(self, agent: str) -> str:
        return str(self.nodes[agent]["role"])

    def edges_of(self, kind: EdgeKind) -> list[tuple[str, str]]:
        return [(u, v) for u, v, k in self.edges(keys=True) if k == kind]

    def kind_view(self, kind: EdgeKind) -> nx.DiGraph:
        """A plain ``DiGraph`` of one edge kind over all agents (a copy)."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes(data=True))
        g.add_edges_from((u, v, d) for u, v, k, d in self.edges(keys=True, data=True) if k == kind)
        return g

    def spatial_predecessors(self, agent: str) -> list[str]:
        return [u for u, _, k in self.in_edges(agent, keys=True) if k == "spatial"]

    def temporal_predecessors(self, agent: str) -> list[str]:
        return [u for u, _, k in self.in_edges(agent, keys=True) if k == "temporal"]

    def generations(self) -> list[list[str]]:
        """Agents grouped by ``networkx.topological_generations`` of the spatial DAG."""
        self.validate()
        return [sorted(g, key=self._order) for g in nx.topological_generations(self.kind_view("spatial"))]

    def _order(self, agent: str) -> int:
        return self.agents.index(agent)

    def sinks(self) -> list[str]:
        """Agents with no outgoing spatial edge, in node order."""
        sg = self.kind_view("spatial")
        return [a for a in self.agents if sg.out_degree(a) == 0]

    def probability(self, u: str, v: str, kind: EdgeKind) -> float:
        lg = self.edges[u, v, kind]["logit"]
        return 1.0 if lg is None else sigmoid(float(lg))

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> Topology:
        if self.number_of_nodes() == 0:
            raise ConfigError("topology", "the team has no agents", "add at least one agent")
        for u, v, k in self.edges(keys=True):
            if k not in EDGE_KINDS:
                raise ConfigError(f"edge {u}->{v}", f"unknown edge kind {k!r}", "use 'spatial' or 'temporal'")
        for name, data in self.nodes(data=True):
            if not isinstance(data.get("role"), str) or not data["role"]:
                raise ConfigError(f"agent {name}.role", "missing", "add_agent(name, role=...)")
        sg = self.kind_view("spatial")
        if not nx.is_directed_acyclic_graph(sg):
            cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(sg))
            raise ConfigError(
                "topology.spatial", f"spatial edges form a cycle ({cycle})", "make one of them temporal"
            )
        return self

    # -- sampling and pruning --------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Topology:
        """A realized graph: each edge kept independently with probability ``sigmoid(logit)``."""
        return self.sample_with_mask(rng)[0]

    def sample_with_mask(self, rng: np.random.Generator) -> tuple[Topology, dict[tuple[str, str, str], bool]]:
        keys = list(self.edges(keys=True))
        probs = np.array([self.probability(u, v, k) for u, v, k in keys])
        draws = rng.random(len(keys)) < probs
        mask = {key: bool(d) for key, d in zip(keys, draws, strict=True)}
        return self.keep_edges(k for k, kept in mask.items() if kept), mask

    def keep_edges(self, keep: Iterable[tuple[str, str, str]]) -> Topology:
        kept = set(keep)
        g: Topology = self.copy()
        g.remove_edges_from([e for e in self.edges(keys=True) if e not in kept])
        return g

    def prune(
        self,
        *,
        threshold: float | None = None,
        keep: int | None = None,
        kinds: Sequence[EdgeKind] = EDGE_KINDS,
    ) -> Topology:
        """A deterministic graph: keep edges with probability ≥ ``threshold``, or the ``keep`` most
        probable learnable edges. Fixed edges (``logit=None``) and edges of kinds not listed always stay."""
        if (threshold is None) == (keep is None):
            raise ConfigError("prune", "give exactly one of threshold= or keep=", "e.g. prune(threshold=0.5)")
        learnable = [
            (u, v, k)
            for u, v, k, d in self.edges(keys=True, data=True)
            if d["logit"] is not None and k in kinds
        ]
        if threshold is not None:
            if not 0.0 <= threshold <= 1.0:
                raise ConfigError("prune.threshold", f"{threshold} is outside [0, 1]", "use a probability")
            drop = [e for e in learnable if self.probability(*e) < threshold]
        else:
            assert keep is not None
            if keep < 0:
                raise ConfigError("prune.keep", f"{keep} is negative", "keep a count ≥ 0")
            ranked = sorted(learnable, key=lambda e: -float(self.edges[e]["logit"]))
            drop = ranked[keep:]
        g: Topology = self.copy()
        g.remove_edges_from(drop)
        return g

    # -- adjacency ---------------------------------------------------------------------------------
    def to_adjacency(self, kind: EdgeKind) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Edge probabilities as an ``n × n`` matrix in node order (0 = no edge, 1 = fixed edge)."""
        idx = {a: i for i, a in enumerate(self.agents)}
        m = np.zeros((len(idx), len(idx)))
        for u, v in self.edges_of(kind):
            m[idx[u], idx[v]] = self.probability(u, v, kind)
        return m

    @classmethod
    def from_adjacency(
        cls,
        spatial: Any = None,
        temporal: Any = None,
        *,
        agents: Sequence[str] | None = None,
        roles: str | Sequence[str] = "solver",
        name: str = "adjacency",
    ) -> Topology:
        """Build from square matrices: 0 = no edge, 1 = fixed edge, 0 < p < 1 = learnable edge."""
        mats = {
            k: np.asarray(m, dtype=float)
            for k, m in (("spatial", spatial), ("temporal", temporal))
            if m is not None
        }
        if not mats:
            raise ConfigError("adjacency", "no matrix given", "pass spatial= and/or temporal=")
        n = next(iter(mats.values())).shape[0]
        for k, m in mats.items():
            if m.shape != (n, n):
                raise ConfigError(
                    f"adjacency.{k}", f"shape {m.shape} is not ({n}, {n})", "use square matrices"
                )
            if np.any((m < 0) | (m > 1)) or not np.all(np.isfinite(m)):
                raise ConfigError(f"adjacency.{k}", "entries must be probabilities in [0, 1]", "rescale it")
        names = list(agents) if agents is not None else [f"a{i}" for i in range(n)]
        if len(names) != n:
            raise ConfigError("adjacency.agents", f"{len(names)} names for {n} agents", "one name per row")
        role_list = [roles] * n if isinstance(roles, str) else list(roles)
        if len(role_list) != n:
            raise ConfigError("adjacency.roles", f"{len(role_list)} roles for {n} agents", "one role per row")
        g = cls(name=name)
        for a, r in zip(names, role_list, strict=True):
            g.add_agent(a, r)
        for k, m in mats.items():
            for i, j in zip(*np.nonzero(m), strict=True):
                p = float(m[i, j])
                lg = None if p >= 1.0 else logit(p)
                g._add_edge(names[i], names[j], k, lg)  # type: ignore[arg-type]
        return g.validate()

    # -- JSON ---------------------------------------------------------------------------------------
    def to_spec(self) -> TopologySpec:
        agents = []
        for a, d in self.nodes(data=True):
            extra = {k: v for k, v in d.items() if k not in {"role", "model", "adapter", "sampling"}}
            agents.append(
                AgentSpec(
                    name=a,
                    role=d["role"],
                    model=d.get("model"),
                    adapter=d.get("adapter"),
                    sampling=d.get("sampling"),
                    attrs=extra,
                )
            )
        edges = [
            EdgeSpec(source=u, target=v, kind=k, logit=d["logit"])
            for u, v, k, d in self.edges(keys=True, data=True)
        ]
        graph = {k: v for k, v in self.graph.items() if k != "name"}
        return TopologySpec(
            name=str(self.graph.get("name", "topology")),
            agents=agents,
            edges=edges,
            protocol=ProtocolSpec(**{k: graph.pop(k) for k in PROTOCOL_KEYS if k in graph}),
            attrs=graph,
        )

    @classmethod
    def from_spec(cls, spec: TopologySpec) -> Topology:
        g = cls(name=spec.name)
        g.graph.update(spec.attrs)
        g.graph.update(spec.protocol.model_dump(exclude_none=True))  # a shape's protocol comes back
        for a in spec.agents:
            g.add_agent(a.name, a.role, model=a.model, adapter=a.adapter, sampling=a.sampling, **a.attrs)
        for e in spec.edges:
            g._add_edge(e.source, e.target, e.kind, e.logit)
        return g.validate()

    def to_json(self) -> str:
        return self.to_spec().model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Topology:
        try:
            spec = TopologySpec.model_validate_json(text)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(
                f"topology.{loc}", err["msg"], "see Topology.to_json() for the format"
            ) from None
        return cls.from_spec(spec)

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("topology", f"file {str(p)!r} does not exist", "save one with Topology.save")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError("topology", f"{p} is not UTF-8 JSON", "re-save it") from None

    def same_as(self, other: Topology) -> bool:
        return bool(json.loads(self.to_json()) == json.loads(other.to_json()))

    # -- drawing -----------------------------------------------------------------------------------
    def draw(self, path: str | Path, *, title: str | None = None) -> Path:
        """PNG: spatial edges solid, temporal edges dashed and curved, width by keep-probability
        (:func:`agentgraph.graph.drawing.draw`)."""
        return draw(self, path, title=title)
