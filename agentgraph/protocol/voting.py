"""Plurality voting over turns' answers, by canonical answer key (what the ``majority``, ``weighted``
and ``judge``-fallback rules and the maj@k metric share), and choosing the best-scored answer (what
best-of-N and beam search share).

Unparseable answers do not vote; ties are broken by a generator seeded with the session id
(deterministic and unbiased).
"""

from __future__ import annotations

import random
from collections import defaultdict

from agentgraph.core.answers import answer_key
from agentgraph.core.messages import Decision, Turn


def vote(turns: list[Turn], weights: dict[str, float], session: str, method: str) -> Decision:
    tally: dict[str, float] = defaultdict(float)
    first: dict[str, str] = {}
    for t in turns:
        key = answer_key(t.answer)
        if key is None or t.answer is None:
            continue
        tally[key] += weights.get(t.agent, 1.0)
        first.setdefault(key, t.answer)
    if not tally:
        return Decision(method=method, answer=None, note="no agent gave a parseable answer")
    best = max(tally.values())
    tied = sorted(k for k, v in tally.items() if v == best)
    pick = tied[0] if len(tied) == 1 else random.Random(f"tie|{session}").choice(tied)
    # the model's validator on a dict: what Decision(...) does without its Python __init__ (once a
    # session on the scheduler's hot path)
    made: Decision = _validate_decision(
        {
            "method": method,
            "answer": first[pick],
            "votes": dict(tally),
            "note": "tie broken at random" if len(tied) > 1 else "",
        }
    )
    return made


_validate_decision = Decision.__pydantic_validator__.validate_python


def scores_of(turns: list[Turn]) -> dict[str, list[float]]:
    """Candidate turn id → the parseable scores graders gave it (a grader scores the last turn it read)."""
    out: dict[str, list[float]] = defaultdict(list)
    for t in turns:
        if t.kind == "score" and t.read and t.score is not None:
            out[t.read[-1]].append(t.score)
    return dict(out)


def best_scored(
    candidates: list[Turn], scores: dict[str, list[float]], session: str, method: str
) -> Decision:
    """The answer of the best-scored candidate.

    A candidate's score is the mean of its graders' parseable scores. Candidates without a
    parseable answer are out. Candidates without a parseable score rank below every scored one;
    if none has a score, the candidates vote (the note says so). Several candidates tied at the best
    score vote among themselves (a tie there is broken by the session-seeded generator).
    """
    answered = [t for t in candidates if t.ok and answer_key(t.answer) is not None]
    scored = [(sum(s) / len(s), t) for t in answered if (s := scores.get(t.id))]
    if not scored:
        d = vote(answered, {}, session, method)
        d.note = "no candidate has a parseable score; the candidates voted" + (
            f" ({d.note})" if d.note else ""
        )
        return d
    best = max(v for v, _ in scored)
    tied = [t for v, t in scored if v == best]
    d = vote(tied, {}, session, method)
    d.score = best
    if len(tied) > 1:
        d.note = f"{len(tied)} candidates tied at score {best:g}; they voted" + (
            f" ({d.note})" if d.note else ""
        )
    d.decider = tied[0].agent if len({answer_key(t.answer) for t in tied}) == 1 else None
    return d
