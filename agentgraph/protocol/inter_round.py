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

A policy is an object with behaviour: ``check`` (at team build time) and ``carry`` (between rounds).
A user-written policy only has to provide the same four members (:class:`InterRound`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from agentgraph.core.answers import answer_key
from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import Turn
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import PeerView, Speak, view

Score = Literal["agreement", "confidence", "verifier"]
Carried = dict[str, list[PeerView]]


@runtime_checkable
class InterRound(Protocol):
    """What a policy provides to the scheduler."""

    @property
    def name(self) -> str: ...

    @property
    def logprobs(self) -> bool:
        """Whether the policy reads token log-probs (the team then asks the engine for them)."""
        ...

    def check(self, roles: Mapping[str, Role]) -> None:
        """Raise :class:`ConfigError` if the policy cannot run with these roles."""
        ...

    async def carry(
        self,
        rnd: int,
        answered: Mapping[str, Turn],
        agents: Sequence[str],
        predecessors: Mapping[str, Sequence[str]],
        roles: Mapping[str, Role],
        speak: Speak,
    ) -> Carried:
        """What each agent reads in round ``rnd`` from round ``rnd − 1``'s ``answered`` turns."""
        ...


@dataclass(frozen=True)
class Full:
    name: str = "full"
    logprobs: bool = False

    def check(self, roles: Mapping[str, Role]) -> None:
        return None

    async def carry(
        self,
        rnd: int,
        answered: Mapping[str, Turn],
        agents: Sequence[str],
        predecessors: Mapping[str, Sequence[str]],
        roles: Mapping[str, Role],
        speak: Speak,
    ) -> Carried:
        return {
            a: [view(answered[u], "own" if u == a else "temporal") for u in predecessors[a] if u in answered]
            for a in agents
        }


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

    @property
    def logprobs(self) -> bool:
        return self.score == "confidence"

    def check(self, roles: Mapping[str, Role]) -> None:
        return None

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

    async def carry(
        self,
        rnd: int,
        answered: Mapping[str, Turn],
        agents: Sequence[str],
        predecessors: Mapping[str, Sequence[str]],
        roles: Mapping[str, Role],
        speak: Speak,
    ) -> Carried:
        scores = self.scores(list(answered.values()))
        order = {a: i for i, a in enumerate(agents)}
        out: Carried = {}
        for agent in agents:
            preds = [u for u in predecessors[agent] if u in answered]
            others = sorted((u for u in preds if u != agent), key=lambda u: (-scores.get(u, 0.0), order[u]))
            kept = ([agent] if agent in preds else []) + others[: self.k]
            kept.sort(key=order.__getitem__)
            out[agent] = [view(answered[u], "own" if u == agent else "temporal") for u in kept]
        return out


@dataclass(frozen=True)
class Summarize:
    role: str = "summarizer"
    name: str = "summarize"
    logprobs: bool = False

    def check(self, roles: Mapping[str, Role]) -> None:
        roles[self.role]  # a RoleBook raises a ConfigError naming an unknown role

    async def carry(
        self,
        rnd: int,
        answered: Mapping[str, Turn],
        agents: Sequence[str],
        predecessors: Mapping[str, Sequence[str]],
        roles: Mapping[str, Role],
        speak: Speak,
    ) -> Carried:
        readers = [a for a in agents if predecessors[a]]
        if not readers or not answered:
            return {}
        peers = [view(t, "temporal") for t in answered.values()]
        summary = await speak("summary", roles[self.role], rnd - 1, "summary", peers)
        if not summary.ok:
            return {a: [] for a in readers}
        return {a: [view(summary, "summary")] for a in readers}


def parse_policy(spec: str | InterRound) -> InterRound:
    """``full``, ``partial`` / ``partial:K`` / ``partial:K:confidence``, ``summarize[:ROLE]``, or a policy.

    Examples
    --------
    >>> parse_policy("partial:2:confidence")
    Partial(k=2, score='confidence', name='partial')
    >>> parse_policy("summarize").role
    'summarizer'
    """
    if not isinstance(spec, str):
        if not isinstance(spec, InterRound):
            raise ConfigError(
                "inter_round", f"{type(spec).__name__} is not a policy", "use a string or a policy object"
            )
        return spec
    name, _, rest = spec.partition(":")
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
