"""Sampling parameters, independent of any engine.

Role cards carry defaults, agents carry overrides; backends translate the merged result into their
own format (vLLM ``SamplingParams`` or an OpenAI request body). There is deliberately no per-request
seed: it kills vLLM's CPU worker ("CPU Generator does not use offset"); seed the engine instead.

``thinking_budget`` and ``answer_tokens`` are read by the scheduler, not sent to an engine: they
shape the two requests of a thinking turn (:mod:`agentgraph.core.thinking`). Being sampling fields, they
follow the same precedence: role card < preset < team < agent.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=1_000_000)
    stop: tuple[str, ...] = ()
    include_stop: bool = Field(False, description="keep the matched stop string in the text")
    logprobs: bool = False
    top_k: int | None = Field(None, ge=1, description="sample from the k likeliest tokens (None: all)")
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**31,
        description="sampling seed (None: the engine's); a session gives each agent its own seed from it",
    )
    thinking_budget: int | tuple[int, ...] | None = Field(
        None, description="most thinking tokens per turn (a tuple: one per round, the last repeating)"
    )
    answer_tokens: int = Field(256, ge=1, le=1_000_000, description="new tokens after the thinking")

    @field_validator("thinking_budget")
    @classmethod
    def _budget(cls, v: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
        return _check_budget(v)

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
    include_stop: bool | None = None
    logprobs: bool | None = None
    top_k: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**31)
    thinking_budget: int | tuple[int, ...] | None = None
    answer_tokens: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("thinking_budget")
    @classmethod
    def _budget(cls, v: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
        return _check_budget(v)

    def over(self, base: SamplingOverrides | None) -> SamplingOverrides:
        """These overrides laid over ``base``: a field set here wins, the rest of ``base`` stays
        (a trainer's temperature over a team's thinking budget keeps the budget).

        >>> SamplingOverrides(temperature=1.0).over(SamplingOverrides(thinking_budget=64)).thinking_budget
        64
        """
        if base is None:
            return self
        return base.model_copy(update=self.model_dump(exclude_none=True))


def _check_budget(v: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
    values = (v,) if isinstance(v, int) else v or ()
    if any(b < 0 for b in values):
        raise ValueError("a thinking budget is a number of tokens ≥ 0")
    if isinstance(v, tuple) and not v:
        raise ValueError("give at least one budget")
    return v
