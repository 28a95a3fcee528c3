"""Plurality voting over turns' answers, by canonical answer key (what the ``majority``, ``weighted``
and ``judge``-fallback rules and the maj@k metric share).

Unparseable answers do not vote; ties are broken by a generator seeded with the session id
(deterministic and unbiased).
"""

from __future__ import annotations

import random
from collections import defaultdict

from agentgraph.answers import answer_key
from agentgraph.messages import Decision, Turn


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
    return Decision(
        method=method,
        answer=first[pick],
        votes=dict(tally),
        note="tie broken at random" if len(tied) > 1 else "",
    )
