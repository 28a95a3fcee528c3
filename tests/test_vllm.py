"""Real tests: the embedded model on vLLM (CPU build), in-process and behind a real server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import agentgraph as ag
from agentgraph.backends import VLLM, OpenAI
from agentgraph.core.answers import answer_key, parse_score
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.graph.generators import full
from tests.conftest import ON_GPU
from tests.servers import engine_processes, free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.vllm
PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def debate() -> ag.Team:
    return ag.Team(full(3), rounds=2, sampling=SamplingOverrides(max_tokens=48))


def check_turns(result: ag.SessionResult) -> None:
    agents = [t for t in result.turns if t.kind == "agent"]
    assert len(agents) == 6 and result.errors == 0
    for t in agents:
        assert t.prompt_tokens == len(t.prompt_token_ids) > 20
        assert t.completion_tokens == len(t.completion_token_ids) > 0
        assert t.finish_reason in ("stop", "length")
    for t in agents:
        if t.round == 1:
            assert len(t.read) == 3
            assert all(x.startswith(f"{result.session}:r0:") for x in t.read)


async def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return bool(predicate())


async def test_debate_in_process_tokens_match_engine_counters(engine: VLLM) -> None:
    before = VLLM.engine_counters()
    result = await ag.solve(debate(), PROBLEM, engine, gold="7")
    check_turns(result)
    want_p = before.get("vllm:prompt_tokens", 0) + result.usage.prompt_tokens
    want_c = before.get("vllm:generation_tokens", 0) + result.usage.completion_tokens
    ok = await wait_for(
        lambda: (
            VLLM.engine_counters().get("vllm:prompt_tokens") == want_p
            and VLLM.engine_counters().get("vllm:generation_tokens") == want_c
        )
    )
    assert ok, (VLLM.engine_counters(), want_p, want_c)
    # round 1 prompts really contain the round-0 answers they claim to have read
    tok = engine._tokenizer
    r0 = {t.id: t for t in result.turns if t.round == 0}
    for t in result.turns:
        if t.round == 1:
            prompt = tok.decode(t.prompt_token_ids)
            for rid in t.read:
                assert r0[rid].text.strip()[-20:] in prompt


async def test_logprobs_and_sampling_come_from_the_engine(engine: VLLM) -> None:
    req = ag.backends.GenerationRequest(
        messages=(ag.ChatMessage(role="user", content="Say hello."),),
        sampling=ag.Sampling(temperature=0.0, max_tokens=8, logprobs=True),
    )
    a, b = await asyncio.gather(engine.generate(req), engine.generate(req))
    assert a.token_ids == b.token_ids  # greedy is deterministic
    assert a.logprobs is not None and len(a.logprobs) == len(a.token_ids) == a.completion_tokens <= 8
    assert all(lp <= 0.0 for lp in a.logprobs)


@pytest.mark.skipif(ON_GPU, reason="CPU only: on a GPU vLLM's own block size is kept")
async def test_prefixes_are_shared_in_32_token_blocks_on_cpu(engine: VLLM) -> None:
    # vLLM's CPU default (128) never shares a prefix as short as a team prompt's
    assert engine.engine.vllm_config.cache_config.block_size == 32
    with pytest.raises(ag.ConfigError, match="block_size"):
        VLLM(block_size=50)


async def test_prompt_over_context_is_refused_before_sending(engine: VLLM) -> None:
    with pytest.raises(ag.ConfigError, match="over the context"):
        await ag.solve(debate(), "seven " * 3000, engine)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    proc = start_server(port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, time.monotonic() + 300)
        yield url
    finally:
        stop(proc)


def server_counters(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for name in ("vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
        out[name] = sum(
            float(m) for m in re.findall(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
        )
    return out


async def test_debate_over_vllm_serve_tokens_match_server_usage(server: str) -> None:
    before = server_counters(server)
    async with OpenAI(f"{server}/v1") as backend:
        assert backend.model == "smollm2"
        result = await ag.solve(debate(), PROBLEM, backend, gold="7")
    check_turns(result)
    after = server_counters(server)
    assert (
        after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] == result.usage.prompt_tokens
    )
    assert (
        after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
        == result.usage.completion_tokens
    )


async def test_unreachable_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ag.ConfigError, match="endpoints: no endpoint answered"):
        async with OpenAI(f"http://127.0.0.1:{free_port()}/v1"):
            pass


def test_cli_run_on_the_embedded_model(tmp_path: Path) -> None:
    t = tmp_path / "t.jsonl"
    before = engine_processes()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentgraph.cli",
            "run",
            "What is 2 + 3?",
            "--topology",
            "chain:2",
            "--rounds",
            "1",
            "--max-tokens",
            "16",
            "--gold",
            "5",
            "--transcript",
            str(t),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    j = json.loads(proc.stdout.strip().splitlines()[-1])
    assert j["requests"] == 2 and j["completion_tokens"] > 0 and j["errors"] == 0
    (s,) = ag.load(t).values()
    assert sum(x.completion_tokens for x in s.turns) == j["completion_tokens"]
    assert not engine_processes() - before  # the CLI shut its engine down


# -- test-time-scaling shapes on the real engine. They live here, not in a file of their own,
# because vLLM's Prometheus logger unregisters the previous engine's counters whenever another
# engine starts in the process: later test files (LoRA, thinking) start engines of their own, so
# only tests that run before them can read the shared engine's counters.
ADD = "What is 23 + 45?"
SHORT = ag.SamplingOverrides(max_tokens=24)


async def counted(engine: VLLM, team: ag.Team) -> ag.SessionResult:
    """Solve once and check the session's tokens equal what the engine counted for it."""
    before = VLLM.engine_counters()
    result = await ag.solve(team, ADD, engine, gold="68")
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


def test_a_lora_rank_vllm_does_not_list_is_rounded_up_and_one_beyond_refused() -> None:
    import typing

    from vllm.config.lora import LoRAConfig

    from agentgraph.backends.vllm import LORA_RANKS

    assert typing.get_args(typing.get_type_hints(LoRAConfig)["max_lora_rank"]) == LORA_RANKS
    assert VLLM("m", enable_lora=True, max_lora_rank=4).max_lora_rank == 8
    assert VLLM("m", enable_lora=True, max_lora_rank=16).max_lora_rank == 16
    with pytest.raises(ag.ConfigError, match="max_lora_rank"):
        VLLM("m", enable_lora=True, max_lora_rank=1024)
