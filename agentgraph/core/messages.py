"""Chat messages and turns: the records a session is made of.

A :class:`Turn` is one agent speaking once in one round (or the summarizer / judge writing once).
It keeps exactly what the engine reported: prompt and completion token ids, their counts, the finish
reason and log-probs when asked for, so token accounting is never estimated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    """Token and request counts; additive."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    thinking_tokens: int = Field(0, description="the part of completion_tokens spent thinking")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def answer_tokens(self) -> int:
        return self.completion_tokens - self.thinking_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            requests=self.requests + other.requests,
            thinking_tokens=self.thinking_tokens + other.thinking_tokens,
        )


TurnKind = Literal["agent", "score", "summary", "judge"]
"""``agent``: a team member's answer; ``score``: a grader's number for another turn (best-of-N, beam
search); ``summary`` and ``judge``: the extra requests of those policies."""


class Turn(BaseModel):
    """One completion inside a session, with everything needed to audit or train on it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    session: str
    agent: str
    role: str
    round: int = Field(ge=0)
    kind: TurnKind = "agent"
    read: list[str] = Field(default_factory=list, description="ids of the turns shown to this agent")
    text: str = ""
    answer: str | None = None
    prompt_token_ids: list[int] = Field(default_factory=list)
    completion_token_ids: list[int] = Field(
        default_factory=list, description="everything after the prompt, forced conclusion included"
    )
    prompt_tokens: int = Field(0, description="prompt tokens the engine processed, every request of the turn")
    completion_tokens: int = Field(0, description="tokens the engine generated (forced ones excluded)")
    requests: int = Field(1, ge=1, description="engine requests of the turn (2 for a thinking turn)")
    thinking_chars: int = Field(0, ge=0, description="text[:thinking_chars] is the thinking part")
    thinking_closed: bool = Field(True, description="False: the think block never closed (no answer)")
    thinking_tokens: int = Field(0, ge=0, description="generated tokens spent thinking")
    forced_tokens: int = Field(0, ge=0, description="tokens of a forced conclusion (budget forcing)")
    dropped_peers: list[str] = Field(
        default_factory=list, description="turns left out so the prompt fits the context"
    )
    score: float | None = Field(
        None, description="a grader's score of the turns it read (strictly parsed; None: unparseable)"
    )
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    adapter: str | None = None
    model: str | None = Field(None, description="the model the turn ran on (None: the backend's default)")
    started_s: float = Field(0.0, description="seconds since the session started")
    latency_s: float = 0.0
    attempts: int = Field(1, ge=1, description="requests sent for this turn (retries included)")
    failed_attempts: list[str] = Field(default_factory=list, description="the error of every failed attempt")
    error: str | None = None

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            requests=self.requests,
            thinking_tokens=self.thinking_tokens,
        )

    @property
    def thinking(self) -> str:
        return self.text[: self.thinking_chars]

    @property
    def final(self) -> str:
        """What the turn concluded (the text after the think block; empty if it never closed)."""
        return self.text[self.thinking_chars :] if self.thinking_closed else ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def brief(self) -> dict[str, Any]:
        """Who spoke when, what it read, answered or scored, and its tokens — the fields a stream
        event or a viewer shows of a turn (text left to the caller: final only, or thinking too)."""
        return {
            "id": self.id,
            "agent": self.agent,
            "role": self.role,
            "round": self.round,
            "kind": self.kind,
            "read": self.read,
            "answer": self.answer,
            "score": self.score,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
        }


class Decision(BaseModel):
    """How a session's answer was chosen: by which rule, the tally, and who decided."""

    model_config = ConfigDict(extra="forbid")

    method: str
    answer: str | None
    votes: dict[str, float] = Field(default_factory=dict)
    decider: str | None = None
    note: str = ""
    score: float | None = Field(None, description="the grader score of the chosen answer (best-of-N, beam)")
    stage: int | None = Field(None, description="the cascade stage that decided (0 = the cheapest)")
    stage_answers: list[str | None] = Field(
        default_factory=list, description="the answer each cascade stage reached, in order"
    )
