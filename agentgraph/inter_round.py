"""Inter-round policies: what crosses from round r−1 into round r along temporal edges.

- ``full`` — every temporal predecessor's message (the classic debate).
- ``partial`` — the reader's own previous message plus the ``k`` best of its other temporal
  predecessors, ranked by ``score``: ``agreement`` (share of the round that gave the same answer),
  ``confidence`` (mean token log-probability; needs log-probs, which the team then asks for) or
  ``verifier`` (share of the round's verifier-role agents whose answer it matches).
  Ties go to node order, so the choice is deterministic.
- ``summarize`` — a summarizer role writes one bounded summary of round r−1 (its ``max_tokens`` caps
  it); every reader with a temporal predecessor reads that summary *instead of* the messages, so the
  prompt of round r stays bounded whatever the number of agents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from agentgraph.answers import answer_key
from agentgraph.errors import ConfigError
from agentgraph.messages import Turn

Score = Literal["agreement", "confidence", "verifier"]


@dataclass(frozen=True)
class Full:
    name: str = "full"


@dataclass(frozen=True)
class Partial:
    k: int = 1
    score: Score = "agreement"
    name: str = "partial"

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ConfigError("inter_round.k", f"{self.k} is negative", "keep k ≥ 0 messages")
        if self.score not in ("agreement", "confidence", "verifier"):
            raise ConfigError(
                "inter_round.score", f"unknown score {self.score!r}", "use agreement, confidence or verifier"
            )

    def scores(self, turns: list[Turn]) -> dict[str, float]:
        if self.score == "confidence":
            return {
                t.agent: (sum(t.logprobs) / len(t.logprobs)) if t.logprobs else float("-inf") for t in turns
            }
        if self.score == "verifier":
            verdicts = [answer_key(t.answer) for t in turns if t.role == "verifier" and t.answer is not None]
            return {
                t.agent: (
                    sum(answer_key(t.answer) == v for v in verdicts) / len(verdicts) if verdicts else 0.0
                )
                for t in turns
            }
        keys = Counter(answer_key(t.answer) for t in turns if t.answer is not None)
        n = max(1, len(turns))
        return {t.agent: (keys[answer_key(t.answer)] / n if t.answer is not None else 0.0) for t in turns}


@dataclass(frozen=True)
class Summarize:
    role: str = "summarizer"
    name: str = "summarize"


InterRound = Full | Partial | Summarize


def parse_policy(spec: str | InterRound) -> InterRound:
    """``full``, ``partial`` / ``partial:K`` / ``partial:K:confidence``, or ``summarize``."""
    if isinstance(spec, Full | Partial | Summarize):
        return spec
    name, _, rest = str(spec).partition(":")
    if name == "full" and not rest:
        return Full()
    if name == "summarize":
        return Summarize(role=rest or "summarizer")
    if name == "partial":
        parts = [p for p in rest.split(":") if p]
        try:
            k = int(parts[0]) if parts else 1
        except ValueError:
            raise ConfigError("inter_round", f"bad k in {spec!r}", "e.g. partial:2:agreement") from None
        score = parts[1] if len(parts) > 1 else "agreement"
        return Partial(k=k, score=score)  # type: ignore[arg-type]
    raise ConfigError("inter_round", f"unknown policy {spec!r}", "use full, partial[:K[:SCORE]] or summarize")
