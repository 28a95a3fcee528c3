"""Fleet parity on real `vllm serve` processes: two servers of two different models (the embedded
SmolLM2 with a short context, a tiny random-weight Qwen2 whose template opens a think block). The
OpenAI backend renders prompts with each served model's tokenizer and sends token ids, so budget
forcing, context fitting and mixed teams work as on ``VLLM()``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import agentgraph as ag
from agentgraph.backends import OpenAI, Router
from agentgraph.backends.base import chat_prompt_ids
from agentgraph.core.errors import ConfigError
from agentgraph.core.models import provision
from agentgraph.roles.prompts import build_messages
from agentgraph.testing.tiny import tiny_model
from tests.servers import free_port, start_server, stop, wait_healthy

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]
THINK_TEMPLATE = Path(__file__).parent.parent / "examples" / "chat_templates" / "chatml-think.jinja"
SHORT = 320  # the SmolLM2 server's context: a 3-agent debate's round-1 prompts do not fit


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """name → (base URL, model directory)."""
    root = tmp_path_factory.mktemp("fleet-mixed")
    tiny = tiny_model(
        root, name="tiny-think-qwen2", chat_template=THINK_TEMPLATE.read_text(), max_positions=1024,
        tie_word_embeddings=True,
    )  # fmt: skip
    ports = {"smollm2": free_port(), "tiny": free_port()}
    models = {"smollm2": provision(), "tiny": tiny}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            log = root / f"{name}.log"
            procs[name] = start_server(
                port, log, model=models[name], name=name, max_model_len=SHORT if name == "smollm2" else 1024
            )
        deadline = time.monotonic() + 420
        for name, port in ports.items():
            wait_healthy(f"http://127.0.0.1:{port}", procs[name], root / f"{name}.log", deadline)
        yield {n: (f"http://127.0.0.1:{p}/v1", models[n]) for n, p in ports.items()}
    finally:
        for proc in procs.values():
            stop(proc)


async def test_a_thinking_budget_is_forced_on_a_fleet_as_in_process(
    servers: dict[str, tuple[str, str]],
) -> None:
    url, path = servers["tiny"]
    budget = 8
    sampling = ag.SamplingOverrides(temperature=0.0, thinking_budget=budget, answer_tokens=8, max_tokens=32)
    team = ag.Team(ag.full(2), rounds=1, sampling=sampling)
    async with OpenAI(url, model="tiny") as backend:
        assert backend.think_format is not None and backend.think_format.close == "</think>"
        assert backend.max_context == 1024 and backend.model_path == path
        r = await ag.solve(team, "What is 12 + 30?", backend)
    tok = AutoTokenizer.from_pretrained(path)
    for t in r.turns:
        assert t.requests == 2 and t.thinking_closed and t.thinking_tokens <= budget, t.text
        # the ids the server ran are the in-process engine's rendering of the same messages
        role = team.role(t.agent)
        msgs = build_messages(role, "What is 12 + 30?", [], team.share_of(role), team.preset.system_prompt)
        assert t.prompt_token_ids == chat_prompt_ids(tok, msgs)


async def test_a_later_round_overflow_on_a_fleet_drops_peers_and_finishes(
    servers: dict[str, tuple[str, str]],
) -> None:
    url, _ = servers["smollm2"]
    team = ag.Team(ag.full(3), rounds=2, sampling=ag.SamplingOverrides(temperature=0.0, max_tokens=96))
    async with OpenAI(url) as backend:
        assert backend.max_context == SHORT
        r = await ag.solve(team, "Explain why 12 + 30 = 42, step by step.", backend)
    assert r.failure is None and r.errors == 0
    later = [t for t in r.turns if t.round == 1]
    assert any(t.dropped_peers for t in later), [t.prompt_tokens for t in later]
    assert all(len(t.prompt_token_ids) + t.completion_tokens <= SHORT for t in r.turns)


async def test_a_mixed_team_over_two_servers_of_different_models(
    servers: dict[str, tuple[str, str]],
) -> None:
    g = ag.Topology(name="mixed")
    g.add_agent("s0", "solver")
    g.add_agent("c", "critic", model="tiny")
    g.add_spatial("s0", "c")
    team = ag.Team(g, rounds=2, think="none", sampling=ag.SamplingOverrides(temperature=0.0, max_tokens=16))
    small, tiny = OpenAI(servers["smollm2"][0]), OpenAI(servers["tiny"][0], model="tiny")
    async with Router({"smollm2": small, "tiny": tiny}) as router:
        r = await ag.solve(team, "What is 2 + 3?", router)
    assert r.failure is None and r.errors == 0
    assert sum(small.answered.values()) == 2 and sum(tiny.answered.values()) == 2
    tiny_tok = AutoTokenizer.from_pretrained(servers["tiny"][1])
    for t in r.turns:
        text = tiny_tok.decode(t.prompt_token_ids)
        assert text.endswith("<think>\n") == (t.agent == "c")  # each server's own template
    assert set(r.usage_by_model) == {"default", "tiny"}


async def test_an_endpoint_serving_another_model_is_refused_at_start(
    servers: dict[str, tuple[str, str]],
) -> None:
    with pytest.raises(ConfigError, match="serves smollm2, not tiny"):
        async with OpenAI([servers["tiny"][0], servers["smollm2"][0]], model="tiny"):
            pass
