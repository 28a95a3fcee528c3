"""Reasoning turns on scripted agents that write think blocks of controlled length: what peers read,
answer extraction, thinking budgets (budget forcing), token accounting and context overflow."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.backends.scripted import ScriptedAgent
from agentgraph.core.thinking import ThinkFormat
from agentgraph.eval.datasets import Problem
from agentgraph.eval.metrics import compute_metrics
from agentgraph.roles.presets import choose

R1 = ThinkFormat("<think>", "</think>", opened_by_template=True)  # as an R1 distill's template
SECRET = "SECRET-THOUGHT"


def _answer(call: ScriptedCall) -> int:
    a, b = (int(x) for x in re.findall(r"\d+", call.problem)[:2])
    return a + b


def thinker(words: int) -> ScriptedAgent:
    """Thinks ``words`` words (with a secret marker) and then concludes; continues a forced
    conclusion with the answer, as a model would after "…\\boxed{"."""

    def agent(call: ScriptedCall) -> str:
        if call.prefix.endswith("\\boxed{"):
            return f"{_answer(call)}}}."
        return (
            f"{SECRET} {call.agent} "
            + "hmm " * words
            + f"</think>\nSo the sum is \\boxed{{{_answer(call)}}}."
        )

    return agent


def _run(team: ag.Team, backend: Scripted, problem: str = "What is 3 + 4?") -> ag.SessionResult:
    return asyncio.run(ag.solve(team, problem, backend, gold="7"))


def test_peers_never_see_thinking_under_share_final() -> None:
    prompts: list[str] = []

    def agent(call: ScriptedCall) -> str:
        if not call.prefix:
            prompts.append(call.prompt)
        return thinker(5)(call)  # type: ignore[return-value]

    backend = Scripted(default=agent, think_format=R1)
    r = _run(ag.Team(ag.full(3), rounds=2), backend)
    assert r.correct and r.answer == "7"
    later = prompts[3:]  # round 1 reads round 0
    assert len(later) == 3 and all("So the sum is" in p for p in later)
    assert not any(SECRET in p for p in later)
    # the transcript keeps the thinking, with its token count
    t = r.turns[0]
    assert (
        t.thinking.startswith(SECRET)
        and t.thinking.endswith("</think>")
        and t.final.startswith("\nSo the sum")
    )
    assert 0 < t.thinking_tokens < t.completion_tokens and t.requests == 2
    assert r.usage.thinking_tokens == sum(x.thinking_tokens for x in r.turns)


@pytest.mark.parametrize(
    ("share", "seen", "unseen"), [("full", SECRET, None), ("answer", "\\boxed{7}", "So the")]
)
def test_share_full_and_answer(share: str, seen: str, unseen: str | None) -> None:
    prompts: list[str] = []

    def agent(call: ScriptedCall) -> str:
        if not call.prefix:
            prompts.append(call.prompt)
        return thinker(5)(call)  # type: ignore[return-value]

    team = ag.Team(ag.full(2), rounds=2, share=share)  # type: ignore[arg-type]
    _run(team, Scripted(default=agent, think_format=R1))
    assert all(seen in p for p in prompts[2:])
    if unseen:
        assert not any(unseen in p for p in prompts[2:])


def test_unfinished_thinking_is_unparseable_not_guessed() -> None:
    # no budget: a turn cut off inside its think block has no final part and no answer
    def agent(call: ScriptedCall) -> str:
        return "I think it is \\boxed{7} " + "hmm " * 50

    team = ag.Team(ag.single(), rounds=1, sampling=ag.SamplingOverrides(max_tokens=20))
    r = _run(team, Scripted(default=agent, think_format=R1))
    (t,) = r.turns
    assert not t.thinking_closed and t.final == "" and t.answer is None and r.answer is None
    assert t.finish_reason == "length" and t.thinking_tokens == t.completion_tokens == 20


@pytest.mark.parametrize("budget", [0, 8, 64])
def test_budget_forcing_concludes_within_the_budget(budget: int) -> None:
    team = ag.Team(
        ag.full(2), rounds=1, sampling=ag.SamplingOverrides(thinking_budget=budget, answer_tokens=16)
    )
    r = _run(team, Scripted(default=thinker(200), think_format=R1))
    assert r.correct
    for t in r.turns:
        assert t.thinking_tokens <= budget and t.thinking_closed and t.answer == "7"
        assert t.forced_tokens > 0 and "The final answer is \\boxed{7}" in t.final
        assert t.completion_tokens - t.thinking_tokens <= 16
        assert t.logprobs is None  # forced tokens were never sampled


def test_natural_conclusion_within_the_budget_is_not_forced() -> None:
    team = ag.Team(ag.single(), rounds=1, sampling=ag.SamplingOverrides(thinking_budget=64))
    (t,) = _run(team, Scripted(default=thinker(5), think_format=R1)).turns
    assert t.forced_tokens == 0 and t.answer == "7" and "So the sum" in t.final and 0 < t.thinking_tokens < 64


def test_budget_per_round() -> None:
    team = ag.Team(ag.single(), rounds=3, sampling=ag.SamplingOverrides(thinking_budget=(4, 16)))
    r = _run(team, Scripted(default=thinker(200), think_format=R1))
    assert [t.thinking_tokens for t in r.turns] == [4, 16, 16]
    m = compute_metrics("t", [r])
    assert m.thinking_tokens_by_round == {0: 4, 1: 16, 2: 16}
    assert m.thinking_tokens_per_problem == 36 and m.answer_tokens_per_problem == r.usage.answer_tokens


def test_model_that_opens_its_own_block() -> None:
    # Qwen3-style: the completion itself starts with <think>
    fmt = ThinkFormat("<think>", "</think>", opened_by_template=False)

    def agent(call: ScriptedCall) -> str:
        return "<think>" + str(thinker(3)(call))

    r = _run(ag.Team(ag.single(), rounds=1), Scripted(default=agent, think_format=fmt))
    assert r.turns[0].thinking.startswith("<think>") and r.answer == "7"


def _problems(n: int, long_at: int) -> list[Problem]:
    out = []
    for i in range(n):
        text = f"What is {i} + 7?" + (" Please be careful." * 40 if i == long_at else "")
        out.append(Problem(id=f"p{i}", question=text, answer=str(i + 7)))
    return out


def _calc(call: ScriptedCall) -> str:
    a = int(re.findall(r"\d+", call.problem)[0])
    return f"I computed it step by step, carefully, twice over. \\boxed{{{a + 7}}}"


@pytest.mark.parametrize("rule", ["truncate-peers", "fail-session"])
def test_one_session_overflowing_leaves_the_others_finished(tmp_path: Path, rule: str) -> None:
    # round-0 prompts fit; the long problem's round-1 prompt (3 peers' answers) does not
    backend = Scripted(default=_calc, max_context=280)
    team = ag.Team(ag.full(3), rounds=2, overflow=rule)  # type: ignore[arg-type]
    problems = _problems(20, long_at=5)
    m, results = asyncio.run(ag.evaluate(team, problems, backend, tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    by_id = {r.session: r for r in results}
    assert saved["n"] == 20 and saved["errors"] == m.errors
    long = next(r for r in results if "careful" in r.problem)
    others = [r for r in results if r is not long]
    assert all(r.correct and r.failure is None for r in others)
    if rule == "truncate-peers":
        assert long.correct and long.failure is None and saved["correct"] == 20
        dropped = [t for t in long.turns if t.dropped_peers]
        assert dropped and all(t.round == 1 for t in dropped)
        assert all(not set(t.dropped_peers) & set(t.read) for t in dropped)
    else:
        assert long.failure is not None and "context overflow" in long.failure and not long.correct
        assert saved["correct"] == 19 and saved["failed_sessions"] == 1
    assert len(by_id) == 20


def test_r1_preset_puts_instructions_in_the_user_turn() -> None:
    seen: list[ScriptedCall] = []

    def agent(call: ScriptedCall) -> str:
        seen.append(call)
        return thinker(2)(call)  # type: ignore[return-value]

    preset = choose("auto", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    team = ag.Team(ag.single(), rounds=1, preset=preset, sampling=ag.SamplingOverrides(max_tokens=512))
    r = _run(team, Scripted(default=agent, think_format=R1))
    first = seen[0].request
    assert [m.role for m in first.messages] == ["user"]
    assert "put your final answer within \\boxed{}" in first.messages[0].content
    assert first.sampling.temperature == 0.6 and first.sampling.top_p == 0.95
    assert first.sampling.max_tokens == 512  # the user's setting wins over the preset's 8192
    assert r.answer == "7"
    # the embedded model keeps today's behaviour
    assert choose("auto", None).name == "default"


def test_budget_without_markers_is_refused() -> None:
    team = ag.Team(ag.single(), rounds=1, sampling=ag.SamplingOverrides(thinking_budget=16))
    with pytest.raises(ag.ConfigError, match="marks no thinking"):
        _run(team, Scripted(default=thinker(2)))
