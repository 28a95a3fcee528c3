"""Where the budget goes, and self-consistency at a matched budget.

**Effect of extra compute.** A session's *first answer* is what one sample would have said: for a
cascade, the answer of its first stage; otherwise the answer of the first round-0 agent turn that
read nothing (an independent sample; ties by turn id). Comparing it with the team's answer gives
each problem's effect: ``helped`` (wrong → right), ``hurt`` (right → wrong), ``same`` (unchanged)
or ``changed`` (a different answer, still wrong).

**Matched budget.** A pool of ``M`` independent samples per problem (one role, one round: ``sc``)
answers "what would voting have done with the same tokens?" for every team at once: the first
``N`` samples of the pool *are* an ``sc:N`` run, so for a team that spent ``T`` tokens per problem
on average, ``N`` is the prefix whose measured mean tokens per problem is closest to ``T`` (ties: the
smaller ``N``). Accuracy of the two is compared on the same problems (paired; Newcombe's interval,
:func:`agentgraph.core.stats.paired_difference`). Tokens are ``total`` (prompt + completion, the
default, what every table reports) or ``completion`` (generated only).

Examples
--------
>>> pool = SamplePool(
...     [[("7", 10), ("7", 10), ("8", 10)], [("3", 20), ("4", 20), ("3", 20)]], ["7", "3"], ["p0", "p1"]
... )
>>> pool.tokens_at(2), pool.choose_n(31.0), pool.choose_n(5.0)
(30.0, 2, 1)
>>> pool.correct_at(3)
[True, True]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentgraph.core.answers import answer_key, is_correct
from agentgraph.core.messages import Turn
from agentgraph.core.stats import maj_at_k, paired_difference, pass_at_k, wilson
from agentgraph.engine.transcript import SessionResult
from agentgraph.protocol.voting import vote

Effect = Literal["helped", "hurt", "same", "changed"]
EFFECTS: tuple[Effect, ...] = ("helped", "hurt", "same", "changed")
TokenMeasure = Literal["total", "completion"]


def turn_tokens(t: Turn, measure: TokenMeasure = "total") -> int:
    if not t.ok:
        return 0
    return t.completion_tokens + (t.prompt_tokens if measure == "total" else 0)


def session_tokens(r: SessionResult, measure: TokenMeasure = "total") -> int:
    return r.usage.total_tokens if measure == "total" else r.usage.completion_tokens


def first_answer(r: SessionResult) -> str | None:
    """What one sample would have answered (see the module docstring)."""
    if r.decision.stage_answers:
        return r.decision.stage_answers[0]
    first = r.agent_turns(0)
    alone = [t for t in first if not t.read] or first
    return min(alone, key=lambda t: t.id).answer if alone else None


def effect(r: SessionResult) -> Effect:
    """How the compute beyond one sample changed this problem's answer."""
    gold = r.gold or ""
    before = first_answer(r)
    was, now = is_correct(before, gold), bool(r.correct)
    if now and not was:
        return "helped"
    if was and not now:
        return "hurt"
    return "same" if answer_key(before) == answer_key(r.answer) else "changed"


Tally = tuple[Counter[str | None], str | None]


def tally(answers: Iterable[str | None], gold: str) -> Tally:
    """Answer key → how many samples gave it, and the key of the right answer (``None``: no sample
    was right) — what the unbiased estimators take."""
    answers = list(answers)
    right = next((answer_key(a) for a in answers if is_correct(a, gold)), None)
    return Counter(answer_key(a) for a in answers), right


def pass_and_maj(tallies: Sequence[Tally], k: int) -> tuple[float, float]:
    """Mean unbiased pass@k and maj@k over problems."""
    n = max(1, len(tallies))
    passes = sum(pass_at_k(sum(c.values()), c[right] if right else 0, k) for c, right in tallies)
    return passes / n, sum(maj_at_k(c, right, k) for c, right in tallies) / n


def sample_curves(results: Sequence[SessionResult]) -> tuple[dict[int, float], dict[int, float]]:
    """Unbiased pass@k and maj@k over each session's last-round answers (its samples), for every
    ``k`` up to the fewest samples any session has."""
    tallies = [tally((t.answer for t in r.agent_turns()), r.gold or "") for r in results]
    kmax = min((sum(c.values()) for c, _ in tallies), default=0)
    both = {k: pass_and_maj(tallies, k) for k in range(1, kmax + 1)}
    return {k: p for k, (p, _) in both.items()}, {k: m for k, (_, m) in both.items()}


@dataclass
class SamplePool:
    """Independent samples per problem, in order: ``samples[i][j] = (answer, tokens)``."""

    samples: list[list[tuple[str | None, int]]]
    golds: list[str]
    ids: list[str]

    @classmethod
    def from_results(
        cls, runs: Sequence[Sequence[SessionResult]], measure: TokenMeasure = "total"
    ) -> SamplePool:
        """Pool the round-0 agent turns of one or more ``sc`` runs over the same problems (in run
        order, agents in name order within a run)."""
        first = runs[0]
        samples: list[list[tuple[str | None, int]]] = [[] for _ in first]
        for run in runs:
            for i, r in enumerate(run):
                turns = sorted(
                    r.agent_turns(0),
                    key=lambda t: int(t.agent.lstrip("a")) if t.agent.lstrip("a").isdigit() else 0,
                )
                samples[i] += [(t.answer if t.ok else None, turn_tokens(t, measure)) for t in turns]
        return cls(samples, [r.gold or "" for r in first], [r.session for r in first])

    @property
    def size(self) -> int:
        return min((len(s) for s in self.samples), default=0)

    def tokens_at(self, n: int) -> float:
        """Measured mean tokens per problem of the first ``n`` samples."""
        return sum(sum(tok for _, tok in s[:n]) for s in self.samples) / max(1, len(self.samples))

    def choose_n(self, target: float) -> int:
        """The ``N`` whose measured mean tokens per problem is closest to ``target`` (ties: smaller)."""
        return min(range(1, self.size + 1), key=lambda n: (abs(self.tokens_at(n) - target), n))

    def correct_at(self, n: int) -> list[bool]:
        """Per problem: is the plurality of the first ``n`` samples right (ties seeded by problem)?"""
        out = []
        for s, gold, pid in zip(self.samples, self.golds, self.ids, strict=True):
            turns = [
                Turn(id=f"{pid}:{j}", session=pid, agent=f"a{j}", role="solver", round=0, answer=a)
                for j, (a, _) in enumerate(s[:n])
            ]
            out.append(is_correct(vote(turns, {}, pid, "majority").answer, gold))
        return out

    @cached_property
    def tallies(self) -> list[Tally]:
        """Per problem, the tally of its first :attr:`size` samples."""
        pairs = zip(self.samples, self.golds, strict=True)
        return [tally((a for a, _ in s[: self.size]), gold) for s, gold in pairs]

    def curves(self) -> dict[int, tuple[float, float, float, float]]:
        """``k → (mean tokens, maj@k, pass@k, accuracy of the first k)`` for every prefix size."""
        out = {}
        for k in range(1, self.size + 1):
            passes, majs = pass_and_maj(self.tallies, k)
            acc = sum(self.correct_at(k)) / max(1, len(self.samples))
            out[k] = (self.tokens_at(k), majs, passes, acc)
        return out


class MatchedRow(BaseModel):
    """A team beside self-consistency at its measured token budget, on the same problems."""

    model_config = ConfigDict(extra="forbid")

    team: str
    n: int
    team_accuracy: float
    team_tokens_per_problem: float
    sc_n: int
    sc_tokens_per_problem: float
    sc_accuracy: float
    sc_ci95: tuple[float, float]
    sc_expected: float
    """maj@N over the whole pool (unbiased): what voting N samples gets on average, free of the
    luck of the pool's first N — the paired comparison itself uses the first N."""
    difference: float
    difference_ci95: tuple[float, float]
    team_only: int
    sc_only: int
    pool_short: bool


def matched_row(
    name: str, results: Sequence[SessionResult], pool: SamplePool, measure: TokenMeasure = "total"
) -> MatchedRow:
    """``name``'s results beside ``sc:N`` from ``pool`` at the team's mean tokens per problem."""
    by_id = {r.session: r for r in results}
    team_right = [bool(by_id[pid].correct) if pid in by_id else False for pid in pool.ids]
    target = sum(session_tokens(r, measure) for r in results) / max(1, len(results))
    n = pool.choose_n(target)
    sc_right = pool.correct_at(n)
    diff, lo, hi = paired_difference(team_right, sc_right)
    k = sum(sc_right)
    _, expected = pass_and_maj(pool.tallies, n)
    return MatchedRow(
        team=name,
        n=len(pool.ids),
        team_accuracy=sum(team_right) / max(1, len(team_right)),
        team_tokens_per_problem=target,
        sc_n=n,
        sc_tokens_per_problem=pool.tokens_at(n),
        sc_accuracy=k / max(1, len(sc_right)),
        sc_ci95=wilson(k, len(sc_right)),
        sc_expected=expected,
        difference=diff,
        difference_ci95=(lo, hi),
        team_only=sum(1 for a, b in zip(team_right, sc_right, strict=True) if a and not b),
        sc_only=sum(1 for a, b in zip(team_right, sc_right, strict=True) if b and not a),
        pool_short=n == pool.size and pool.tokens_at(n) < target,
    )


__all__ = [
    "EFFECTS",
    "MatchedRow",
    "SamplePool",
    "effect",
    "first_answer",
    "matched_row",
    "sample_curves",
    "session_tokens",
]
