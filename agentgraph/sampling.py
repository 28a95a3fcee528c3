"""Sampling parameters, independent of any engine.

Role cards carry defaults, agents carry overrides; backends translate the merged result into their
own format (vLLM ``SamplingParams`` or an OpenAI request body). There is deliberately no per-request
seed: it kills vLLM's CPU worker ("CPU Generator does not use offset"); seed the engine instead.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    stop: tuple[str, ...] = ()
    logprobs: bool = False

    def merged(self, overrides: SamplingOverrides | None) -> Sampling:
        if overrides is None:
            return self
        patch = overrides.model_dump(exclude_none=True)
        return self.model_copy(update=patch) if patch else self


class SamplingOverrides(BaseModel):
    """Per-agent overrides; ``None`` means "use the role's default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0.0, le=10.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    stop: tuple[str, ...] | None = None
    logprobs: bool | None = None
