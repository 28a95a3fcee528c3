from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall, create
from agentgraph.core.errors import BackendError
from agentgraph.engine.gc_hold import HOLD
from agentgraph.graph.generators import chain, full, star, tree
from agentgraph.protocol.inter_round import Partial
from agentgraph.roles.book import RoleBook

MARK = re.compile(r"MSG\((\w+),r(\d+)\)")


def marker(call: ScriptedCall) -> str:
    """Says who and when it is, lists the markers it was shown, and answers its round number."""
    seen = ",".join(f"{a}@{r}" for a, r in MARK.findall(call.prompt))
    return f"MSG({call.agent},r{call.round}) saw[{seen}] \\boxed{{{call.round}}}"


def seen(turn: ag.Turn) -> set[tuple[str, int]]:
    inner = re.search(r"saw\[(.*?)\]", turn.text)
    assert inner is not None
    return {(a, int(r)) for a, r in (x.split("@") for x in inner.group(1).split(",") if x)}


async def test_round_r_reads_only_round_r_minus_1_on_temporal_edges() -> None:
    team = ag.Team(full(3), rounds=3)
    r = await ag.solve(team, "p", Scripted(default=marker))
    assert r.rounds_run == 3 and len(r.turns) == 9
    for t in r.turns:
        expected = set() if t.round == 0 else {(f"a{i}", t.round - 1) for i in range(3)}
        assert seen(t) == expected, t.id
        assert sorted(t.read) == sorted(f"{r.session}:r{t.round - 1}:{a}" for a, _ in expected)


async def test_spatial_edges_read_the_same_round_in_generation_order() -> None:
    team = ag.Team(chain(3), rounds=2, decision="chain_tail")
    r = await ag.solve(team, "p", Scripted(default=marker))
    by = {(t.agent, t.round): t for t in r.turns}
    assert seen(by["a0", 0]) == set()
    assert seen(by["a1", 0]) == {("a0", 0)}
    assert seen(by["a2", 1]) == {("a1", 1), ("a2", 0)}  # spatial this round + own memory
    assert by["a1", 0].started_s >= by["a0", 0].started_s
    assert r.decision.decider == "a2"


async def test_agents_of_one_generation_run_concurrently() -> None:
    in_flight = 0
    peak = 0

    class Probe(Scripted):
        async def generate(self, request: ag.backends.GenerationRequest) -> ag.backends.Completion:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await super().generate(request)

    team = ag.Team(star(5), rounds=1, decision="tree_root")
    await ag.solve_many(team, ["p1", "p2", "p3"], Probe(default=marker))
    assert peak == 15  # 5 spokes × 3 sessions, all at once; hubs wait for their spokes


async def test_async_scripted_agents_take_time_without_blocking_others() -> None:
    async def slow_a0(call: ScriptedCall) -> str:
        await asyncio.sleep(0.2)
        return "\\boxed{1}"

    team = ag.Team(full(3), rounds=1)
    r = await ag.solve(team, "p", Scripted({"a0": slow_a0}, default=lambda call: "\\boxed{1}"))
    by = {t.agent: t for t in r.turns}
    assert by["a0"].text == "\\boxed{1}" and by["a0"].latency_s >= 0.2
    assert max(by["a1"].latency_s, by["a2"].latency_s) < 0.1  # the others did not wait for a0


async def test_partial_keeps_own_message_and_top_k_by_agreement() -> None:
    answers = {"a0": "\\boxed{5}", "a1": "\\boxed{5}", "a2": "\\boxed{9}", "a3": "\\boxed{5}"}

    def agent(call: ScriptedCall) -> str:
        return f"MSG({call.agent},r{call.round}) {answers[call.agent]}"

    team = ag.Team(full(4), rounds=2, inter_round=Partial(k=1, score="agreement"))
    r = await ag.solve(team, "p", Scripted(default=agent))
    a2 = next(t for t in r.turns if t.agent == "a2" and t.round == 1)
    a0 = next(t for t in r.turns if t.agent == "a0" and t.round == 1)
    assert [x.split(":")[-1] for x in a2.read] == ["a0", "a2"]  # own + best other (a0 wins the tie by order)
    assert [x.split(":")[-1] for x in a0.read] == ["a0", "a1"]


async def test_summarize_replaces_messages_with_one_bounded_summary() -> None:
    def agent(call: ScriptedCall) -> str:
        if call.role == "summarizer":
            return "SUMMARY " + " ".join(["word"] * 500)  # longer than the card allows
        return "long reasoning " * 50 + "\\boxed{4}"

    small = ag.Team(full(3), rounds=2, inter_round="summarize")
    big = ag.Team(full(9), rounds=2, inter_round="summarize")
    backend = Scripted(default=agent)
    rs, rb = await ag.solve(small, "p", backend), await ag.solve(big, "p", backend)
    for r in (rs, rb):
        summary = [t for t in r.turns if t.kind == "summary"]
        assert (
            len(summary) == 1
            and summary[0].completion_tokens == RoleBook.default()["summarizer"].sampling.max_tokens
        )
        assert summary[0].finish_reason == "length"
        for t in r.turns:
            if t.kind == "agent" and t.round == 1:
                assert t.read == [summary[0].id]
    p_small = max(t.prompt_tokens for t in rs.turns if t.round == 1 and t.kind == "agent")
    p_big = max(t.prompt_tokens for t in rb.turns if t.round == 1 and t.kind == "agent")
    assert p_small == p_big  # bounded independent of the number of agents
    full_big = await ag.solve(ag.Team(full(9), rounds=2), "p", backend)
    assert max(t.prompt_tokens for t in full_big.turns if t.round == 1) > 3 * p_big


@pytest.mark.parametrize(
    ("decision", "expected"),
    [("majority", "1"), ("weighted", "3"), ("judge", "7"), ("chain_tail", "2"), ("tree_root", "2")],
)
async def test_decisions(decision: str, expected: str) -> None:
    votes = {"a0": "1", "a1": "1", "a2": "2", "judge": "7"}

    def agent(call: ScriptedCall) -> str:
        return f"\\boxed{{{votes.get(call.agent, '3')}}}"

    topo = chain(3)
    if decision == "weighted":
        topo.add_agent("heavy", "solver", weight=5.0)
    team = ag.Team(topo, rounds=1, decision=decision)
    r = await ag.solve(team, "p", Scripted(default=agent))
    assert r.answer == expected
    assert r.decision.method == decision


async def test_majority_tie_is_seeded_not_order_dependent() -> None:
    def agent(call: ScriptedCall) -> str:
        return "\\boxed{1}" if call.agent == "a0" else "\\boxed{2}" if call.agent == "a1" else "nothing"

    team = ag.Team(full(3), rounds=1)
    picks = {
        (await ag.solve(team, "p", Scripted(default=agent), session_id=f"s{i}")).answer for i in range(20)
    }
    assert picks == {"1", "2"}
    again = await ag.solve(team, "p", Scripted(default=agent), session_id="s3")
    first = await ag.solve(team, "p", Scripted(default=agent), session_id="s3")
    assert again.answer == first.answer


async def test_judge_without_answer_falls_back_to_majority() -> None:
    def agent(call: ScriptedCall) -> str:
        return "I cannot decide" if call.role == "judge" else "\\boxed{6}"

    r = await ag.solve(ag.Team(full(3), rounds=1, decision="judge"), "p", Scripted(default=agent))
    assert r.answer == "6" and "fell back" in r.decision.note


async def test_unparseable_answers_never_count_as_correct() -> None:
    r = await ag.solve(ag.Team(full(3), rounds=1), "p", Scripted(default=lambda c: "no idea"), gold="4")
    assert r.answer is None and r.correct is False


async def test_early_stop_on_consensus() -> None:
    team = ag.Team(full(3), rounds=4, early_stop=True)
    r = await ag.solve(team, "p", Scripted(default=lambda c: "\\boxed{3}"), gold="3")
    assert r.rounds_run == 1 and r.stopped_early and r.correct


async def test_failures_are_recorded_and_the_team_still_decides() -> None:
    def agent(call: ScriptedCall) -> str:
        if call.agent == "a1":
            raise BackendError("engine exploded")
        return "\\boxed{8}"

    r = await ag.solve(ag.Team(full(3), rounds=2), "p", Scripted(default=agent), gold="8")
    failed = [t for t in r.turns if not t.ok]
    assert len(failed) == 2 and all("engine exploded" in (t.error or "") for t in failed)
    assert r.errors == 2 and r.correct
    assert all(not any(x.endswith(":a1") for x in t.read) for t in r.turns)
    with pytest.raises(BackendError):
        await ag.solve(ag.Team(full(3), rounds=1, on_error="raise"), "p", Scripted(default=agent))


async def test_token_accounting_is_exact() -> None:
    r = await ag.solve(ag.Team(tree(2, 1), rounds=2, inter_round="summarize"), "p", Scripted(default=marker))
    assert r.usage.prompt_tokens == sum(len(t.prompt_token_ids) for t in r.turns)
    assert r.usage.completion_tokens == sum(len(t.completion_token_ids) for t in r.turns)
    assert sum(u.completion_tokens for u in r.usage_by_agent.values()) == r.usage.completion_tokens
    assert sum(u.prompt_tokens for u in r.usage_by_round.values()) == r.usage.prompt_tokens
    assert r.usage.requests == len(r.turns) == 3 * 2 + 1
    assert r.tokens_by_edge["a0->m (spatial)"] == sum(t.completion_tokens for t in r.turns if t.agent == "a0")


async def test_transcript_streams_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    team = ag.Team(full(3), rounds=2, inter_round="summarize", decision="judge")
    with ag.TranscriptWriter(path) as w:
        results = await ag.solve_many(
            team, ["p1", "p2"], Scripted(default=marker), golds=["0", "1"], writer=w
        )
    loaded = ag.load(path)
    assert list(loaded) == [r.session for r in results] or set(loaded) == {r.session for r in results}
    for r in results:
        back = loaded[r.session]
        assert back.result == r
        assert back.turns == r.turns
        assert back.header.agents == {"a0": "solver", "a1": "solver", "a2": "solver"}


async def test_bad_input_is_refused_before_any_request() -> None:
    backend = Scripted(default=marker, max_context=50)
    with pytest.raises(ag.ConfigError, match=r"^rounds: "):
        ag.Team(full(2), rounds=0)
    with pytest.raises(ag.ConfigError, match="unknown role 'wizard'"):
        ag.Team(full(2, role="wizard"))
    with pytest.raises(ag.ConfigError, match="no agents"):
        ag.Team(ag.Topology())
    with pytest.raises(ag.ConfigError, match="cycle"):
        ag.Team(chain(2).add_spatial("a1", "a0"))
    with pytest.raises(ag.ConfigError, match="unknown backend 'gpt'"):
        create("gpt")
    with pytest.raises(ag.ConfigError, match="model: path"):
        create("vllm", model="./no/such/model").start()  # type: ignore[attr-defined]
    with pytest.raises(ag.ConfigError, match="over the context"):
        await ag.solve(ag.Team(full(2)), "word " * 100, backend)
    with pytest.raises(ag.ConfigError, match="inter_round"):
        ag.Team(full(2), inter_round="gossip")
    with pytest.raises(ag.ConfigError, match="decision"):
        ag.Team(full(2), decision="chain_tail")
    assert backend.calls == 0


async def test_partial_by_verifier_keeps_what_the_verifier_endorses() -> None:
    answers = {"a0": "3", "a1": "5", "a2": "5", "v": "3"}

    def agent(call: ScriptedCall) -> str:
        return f"\\boxed{{{answers[call.agent]}}}"

    g = full(3)
    g.add_agent("v", "verifier")
    for a in ("a0", "a1", "a2", "v"):
        g.add_temporal("v", a)
        g.add_temporal(a, "v")
    team = ag.Team(g, rounds=2, inter_round="partial:1:verifier")
    r = await ag.solve(team, "p", Scripted(default=agent))
    a1 = next(t for t in r.turns if t.agent == "a1" and t.round == 1)
    # own message + the best other: a0, whose answer the verifier endorses (a0 and v tie; node order)
    assert sorted(x.split(":")[-1] for x in a1.read) == ["a0", "a1"]
    a2 = next(t for t in r.turns if t.agent == "a2" and t.round == 1)
    assert sorted(x.split(":")[-1] for x in a2.read) == ["a0", "a2"]


async def test_a_run_holds_full_gc_passes_back_and_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    during: list[int] = []

    async def slow(call: ScriptedCall) -> str:
        during.append(gc.get_threshold()[2])
        await asyncio.sleep(0.01)
        return "\\boxed{1}"

    team = ag.Team(full(2), rounds=1)
    # two runs in flight at once: the trigger stays raised until the second ends
    await asyncio.gather(
        ag.solve_many(team, ["1 + 0?", "0 + 1?"], Scripted(default=slow)),
        ag.solve_many(team, ["2 - 1?", "1 * 1?", "1 / 1?"], Scripted(default=slow)),
    )
    assert len(during) == 10 and min(during) >= HOLD
    assert gc.get_threshold() == before

    def broken(call: ScriptedCall) -> str:
        raise RuntimeError("agent bug")

    failing = ag.Team(full(2), rounds=1, on_error="raise")
    with pytest.raises(BackendError):
        await ag.solve_many(failing, ["1 + 0?", "0 + 1?"], Scripted(default=broken))
    assert gc.get_threshold() == before
    # a user's own higher trigger is kept during the run and after it
    gc.set_threshold(before[0], before[1], 5 * HOLD)
    try:
        during.clear()
        await ag.solve_many(team, ["1 + 0?", "0 + 1?"], Scripted(default=slow))
        assert set(during) == {5 * HOLD} and gc.get_threshold()[2] == 5 * HOLD
    finally:
        gc.set_threshold(*before)
