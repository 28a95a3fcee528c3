"""`agentgraph serve` on the embedded model (vLLM in the server process), driven by the openai client."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agentgraph import load
from tests.test_serve import PROBLEM, abandon, cancelled, client, settled, start

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("serve-vllm")
    proc, url = start(
        tmp, "--topology", "full:3", "--name", "debate", "--max-tokens", "32", backend="vllm", timeout=300
    )
    yield url, next(tmp.glob("run-*")) / "transcripts.jsonl"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0  # the engine shut down with the server, nothing left running


def test_models_completion_and_stream_on_the_embedded_model(served: tuple[str, Path]) -> None:
    url, transcript = served
    c = client(url)
    assert [m.id for m in c.models.list()] == ["debate"]
    r = c.chat.completions.create(model="debate", messages=PROBLEM)
    extra = r.model_extra["agentgraph"]
    turns = load(transcript)[extra["session"]].turns
    assert r.usage is not None and len(turns) == 6
    assert r.usage.prompt_tokens == sum(t.prompt_tokens for t in turns) > 0
    assert r.usage.completion_tokens == sum(t.completion_tokens for t in turns) > 0
    chunks = list(
        c.chat.completions.create(
            model="debate", messages=PROBLEM, stream=True, stream_options={"include_usage": True}
        )
    )
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert sum(ch.usage is not None for ch in chunks) == 1


def test_sixteen_concurrent_requests_on_one_engine(served: tuple[str, Path]) -> None:
    url, transcript = served

    async def many() -> list[openai.types.chat.ChatCompletion]:
        c = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        questions = [[{"role": "user", "content": f"What is {i} + {2 * i}?"}] for i in range(16)]
        return list(
            await asyncio.gather(*(c.chat.completions.create(model="debate", messages=q) for q in questions))
        )

    replies = asyncio.run(many())
    sessions = load(transcript)
    for r in replies:
        turns = sessions[r.model_extra["agentgraph"]["session"]].turns
        assert r.usage is not None and len(turns) == 6
        assert r.usage.total_tokens == sum(t.prompt_tokens + t.completion_tokens for t in turns)
    bad = httpx.post(
        f"{url}/v1/chat/completions", content="{oops", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert client(url).chat.completions.create(model="debate", messages=PROBLEM).usage is not None


def test_an_abandoned_request_leaves_no_request_in_the_engine(served: tuple[str, Path]) -> None:
    url, transcript = served
    before = len(cancelled(transcript, "disconnected"))
    # long turns, so the client hangs up while the engine is generating
    abandon(url, {"model": "debate", "messages": PROBLEM, "max_tokens": 400, "temperature": 1.0}, 1.0)
    health = settled(url)
    assert health["sessions_running"] == 0 and health["requests_in_flight"] == 0  # the engine's own count
    (session, *_) = cancelled(transcript, "disconnected")[before:]
    assert session.result is not None and session.result.answer is None
    assert client(url).chat.completions.create(model="debate", messages=PROBLEM).usage is not None
