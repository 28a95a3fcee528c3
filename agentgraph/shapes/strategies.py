"""Beam search and cascades: strategies that spend a session's requests otherwise than in rounds.

Both see the session only through :class:`~agentgraph.team.strategy.SessionLike` (``speak``,
``child``, ``play``), so transcripts, accounting and retries are the engine's. Choices: a beam
proposal that already gives an answer is finished (a candidate, not extended); a single-agent
cascade stage agrees with itself, so it escalates only on a missing answer or a low score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from agentgraph.core.answers import answer_key
from agentgraph.core.messages import Decision, Turn
from agentgraph.protocol.voting import best_scored
from agentgraph.roles.prompts import view
from agentgraph.team.strategy import SessionLike
from agentgraph.team.team import Team


@dataclass(frozen=True)
class Beam:
    """Beam search over agents: ``k`` kept partial solutions, ``branch`` proposals each, ``depth``
    steps; graders score every proposal; the best-scored finished solution decides."""

    k: int
    depth: int
    branch: int = 2
    proposer: str = "stepper"
    grader: str = "grader"
    finisher: str = "finisher"
    prefix: str = ""

    @property
    def name(self) -> str:
        return f"beam search k={self.k}, depth={self.depth}, branch={self.branch}"

    async def run(self, session: SessionLike) -> tuple[Decision, int, bool]:
        roles = session.team.roles
        grader = roles[self.grader]
        frontier: list[list[Turn]] = [[]]
        candidates: list[Turn] = []
        scores: dict[str, list[float]] = {}
        rounds_run = 0
        for d in range(self.depth):
            role = roles[self.finisher if d == self.depth - 1 else self.proposer]
            slots = [
                (j, frontier[j // self.branch] if d else [])
                for j in range(self.k * self.branch)
                if not d or j // self.branch < len(frontier)
            ]
            proposals = await asyncio.gather(
                *(
                    session.speak(f"{self.prefix}p{j}", role, d, "agent", [view(t, "spatial") for t in path])
                    for j, path in slots
                )
            )
            done = [(j, path, p) for (j, path), p in zip(slots, proposals, strict=True) if p.ok]
            grades = await asyncio.gather(
                *(
                    session.speak(
                        f"{self.prefix}g{j}", grader, d, "agent", [view(t, "spatial") for t in [*path, p]]
                    )
                    for j, path, p in done
                )
            )
            rounds_run = d + 1
            ranked: list[tuple[float, int, list[Turn]]] = []
            for (j, path, p), g in zip(done, grades, strict=True):
                if g.score is not None:
                    scores[p.id] = [g.score]
                if p.answer is not None:
                    candidates.append(p)  # finished: a candidate, not extended
                else:
                    ranked.append((g.score if g.score is not None else float("-inf"), j, [*path, p]))
            ranked.sort(key=lambda x: (-x[0], x[1]))
            frontier = [path for _, _, path in ranked[: self.k]]
            if not frontier:
                break
        if not candidates:
            decision = Decision(method="beam", answer=None, note="no proposal reached an answer")
        else:
            decision = best_scored(candidates, scores, session.session, "beam")
        return decision, rounds_run, rounds_run < self.depth


@dataclass(frozen=True)
class Cascade:
    """Budget-adaptive compute: run the stages in order, stopping at the first that is sure enough.

    A stage escalates to the next when it has no answer, when the share of its last-round answers
    that agree with its decision is below ``min_agreement``, or (when ``min_score`` is set and the
    stage is graded) when the score of its decision is below ``min_score`` or unparseable.
    """

    stages: tuple[Team, ...]
    specs: tuple[str, ...]
    min_agreement: float = 1.0
    min_score: float | None = None

    @property
    def name(self) -> str:
        rule = f"agreement < {self.min_agreement:g}"
        if self.min_score is not None:
            rule += f" or score < {self.min_score:g}"
        return f"cascade {' → '.join(self.specs)} (escalate if {rule})"

    def escalation(self, decision: Decision, last: Sequence[Turn], graded: bool) -> str | None:
        """Why a stage's decision is not final (``None``: it is)."""
        if decision.answer is None:
            return "no answer"
        key = answer_key(decision.answer)
        agreement = sum(answer_key(t.answer) == key for t in last) / max(1, len(last))
        if agreement < self.min_agreement:
            return f"agreement {agreement:.2f} < {self.min_agreement:g}"
        if self.min_score is not None and graded:
            if decision.score is None:
                return "no parseable score"
            if decision.score < self.min_score:
                return f"score {decision.score:g} < {self.min_score:g}"
        return None

    async def run(self, session: SessionLike) -> tuple[Decision, int, bool]:
        offset, i = 0, 0
        answers: list[str | None] = []
        notes: list[str] = []
        decision = Decision(method="cascade", answer=None)
        for i, stage in enumerate(self.stages):
            decision, rounds_run, _ = await session.child(stage, offset).play()
            offset += rounds_run
            answers.append(decision.answer)
            agents = set(stage.agents)
            mine = [t for t in session.turns if t.agent in agents]
            last = [t for t in mine if t.kind == "agent" and t.round == offset - 1]
            why = self.escalation(decision, last, any(t.kind == "score" for t in mine))
            if why is None or i == len(self.stages) - 1:
                if why is not None:
                    notes.append(f"the last stage decided although {why}")
                break
            notes.append(f"stage {i} ({self.specs[i]}) escalated: {why}")
        decision.stage = i
        decision.stage_answers = answers
        decision.note = "; ".join([*notes, decision.note] if decision.note else notes)
        return decision, offset, False


__all__ = ["Beam", "Cascade"]
