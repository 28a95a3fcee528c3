"""The JSON form of a topology: every node, edge and graph attribute, so a saved graph loads back
as the same team.

A shape's protocol is part of the form (:class:`ProtocolSpec`): ``sc:5`` keeps its one round and
vote, ``bon:4`` its ``best_score`` decision, a beam its width, branching and the roles of its
proposer, grader and finisher, a cascade its stages (spec, rounds), their role and its escalation
rule. Any other graph attribute is kept in ``attrs``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentgraph.core.sampling import SamplingOverrides

EdgeKind = Literal["spatial", "temporal"]


class AgentSpec(BaseModel):
    """A node, as stored in JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    model: str | None = None
    adapter: str | None = None
    sampling: SamplingOverrides | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    kind: EdgeKind
    logit: float | None = None


class ProtocolSpec(BaseModel):
    """What a shape fixes about how its graph runs (``graph[...]`` attributes of the same names)."""

    model_config = ConfigDict(extra="forbid")

    rounds: int | None = Field(None, ge=1, description="rounds the graph runs (shapes fix theirs)")
    decision: str | None = Field(None, description="the decision rule the graph needs")
    strategy: Literal["beam", "cascade"] | None = Field(None, description="a search instead of rounds")
    beam_k: int | None = Field(None, ge=1, description="beam: partial solutions kept")
    beam_branch: int | None = Field(None, ge=1, description="beam: proposals per kept solution")
    proposer: str | None = Field(None, description="beam: the role that writes a step")
    grader: str | None = Field(None, description="beam: the role that scores a proposal")
    finisher: str | None = Field(None, description="beam: the role that writes the last step")
    stages: list[str] | None = Field(None, description="cascade: the stages' specs, in order")
    stage_rounds: list[int] | None = Field(None, description="cascade: each stage's rounds")
    stage_role: str | None = Field(None, description="cascade: the stages' answering role")
    min_agreement: float | None = Field(None, ge=0.0, le=1.0, description="cascade: escalation rule")
    min_score: float | None = Field(None, description="cascade: escalation on a graded stage's score")


PROTOCOL_KEYS: tuple[str, ...] = tuple(ProtocolSpec.model_fields)


class TopologySpec(BaseModel):
    """The JSON form of a topology (``Topology.to_json`` / ``Topology.from_json``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "topology"
    agents: list[AgentSpec]
    edges: list[EdgeSpec] = Field(default_factory=list)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    attrs: dict[str, Any] = Field(default_factory=dict, description="every other graph attribute")


__all__ = ["PROTOCOL_KEYS", "AgentSpec", "EdgeKind", "EdgeSpec", "ProtocolSpec", "TopologySpec"]
