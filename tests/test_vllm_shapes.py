"""Real tests: the test-time-scaling shapes on the embedded model on vLLM (CPU build)."""

from __future__ import annotations

import asyncio
import time

import pytest

import agentgraph as ag
from agentgraph.answers import answer_key, parse_score
from agentgraph.backends import VLLM

pytestmark = pytest.mark.vllm
PROBLEM = "What is 23 + 45?"
SHORT = ag.SamplingOverrides(max_tokens=24)


async def counted(engine: VLLM, team: ag.Team) -> ag.SessionResult:
    """Solve once and check the session's tokens equal what the engine counted for it."""
    before = VLLM.engine_counters()
    result = await ag.solve(team, PROBLEM, engine, gold="68")
    want = (
        before.get("vllm:prompt_tokens", 0) + result.usage.prompt_tokens,
        before.get("vllm:generation_tokens", 0) + result.usage.completion_tokens,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = VLLM.engine_counters()
        if (now.get("vllm:prompt_tokens"), now.get("vllm:generation_tokens")) == want:
            break
        await asyncio.sleep(0.1)
    now = VLLM.engine_counters()
    assert (now.get("vllm:prompt_tokens"), now.get("vllm:generation_tokens")) == want
    for t in result.turns:
        assert t.ok and t.prompt_tokens == len(t.prompt_token_ids) > 10
        assert t.completion_tokens == len(t.completion_token_ids) > 0
    return result


async def test_best_of_n_grades_every_candidate_strictly(engine: VLLM) -> None:
    result = await counted(engine, ag.shape("bon:3", sampling=SHORT))
    tok = engine._tokenizer
    by_id = {t.id: t for t in result.turns}
    grades = [t for t in result.turns if t.kind == "score"]
    assert len(grades) == 3 and len([t for t in result.turns if t.kind == "agent"]) == 3
    for g in grades:
        assert g.answer is None and g.score == parse_score(g.text)
        assert g.score is None or 0 <= g.score <= 10
        (candidate,) = [by_id[i] for i in g.read]
        assert candidate.text.strip()[-15:] in tok.decode(g.prompt_token_ids)
    scored = [s for s in (g.score for g in grades) if s is not None]
    assert result.decision.score == (max(scored) if scored else None)


async def test_beam_search_reads_its_path(engine: VLLM) -> None:
    result = await counted(engine, ag.shape("beam:2x2", sampling=SHORT))
    tok = engine._tokenizer
    by_id = {t.id: t for t in result.turns}
    proposals = [t for t in result.turns if t.kind == "agent"]
    assert {t.round for t in proposals} <= {0, 1} and len([t for t in proposals if t.round == 0]) == 4
    for t in proposals:
        if t.round == 1:
            (parent,) = [by_id[i] for i in t.read]
            assert parent.round == 0 and parent.answer is None  # finished proposals are not extended
            assert parent.text.strip()[-15:] in tok.decode(t.prompt_token_ids)


async def test_cascade_escalates_only_on_disagreement(engine: VLLM) -> None:
    team = ag.shape("cascade:sc:3+full:2", sampling=ag.SamplingOverrides(max_tokens=24, temperature=1.0))
    results = [await counted(engine, team) for _ in range(3)]
    for r in results:
        cheap = [t for t in r.turns if t.agent.startswith("s0.")]
        large = [t for t in r.turns if t.agent.startswith("s1.")]
        keys = {answer_key(t.answer) for t in cheap}
        disagreed = len(keys) > 1 or None in keys
        assert bool(large) == disagreed and r.decision.stage == int(disagreed)
        assert all(t.round >= 1 for t in large)
