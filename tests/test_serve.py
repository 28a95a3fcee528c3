"""`agentgraph serve` as a real subprocess, driven by the official `openai` client (scripted agents:
the server's own behaviour; the embedded-model version runs the same client against vLLM)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agentgraph import load
from tests.servers import start_serve as start

PROBLEM = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("serve")
    teams = tmp / "teams.yaml"
    teams.write_text("debate: {topology: full:3, rounds: 2}\nvote: {topology: 'sc:5'}\n")
    proc, url = start(tmp, "--teams", str(teams), "--scripted", "tests.agents:calc")
    yield url, next(tmp.glob("run-*")) / "transcripts.jsonl"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_models_and_a_completion(served: tuple[str, Path]) -> None:
    url, transcript = served
    c = client(url)
    models = {m.id: m for m in c.models.list()}
    assert set(models) == {"debate", "vote"}
    assert "2 rounds" in models["debate"].model_extra["team"]
    r = c.chat.completions.create(model="debate", messages=PROBLEM)
    assert (
        r.choices[0].message.content == "The result is \\boxed{42}." and r.choices[0].finish_reason == "stop"
    )
    extra = r.model_extra["agentgraph"]
    assert extra["answer"] == "42" and extra["answers_by_round"]["1"] == {"a0": "42", "a1": "42", "a2": "42"}
    session = load(transcript)[extra["session"]]
    turns = session.turns
    assert len(turns) == 6 and r.usage is not None
    assert r.usage.prompt_tokens == sum(t.prompt_tokens for t in turns)
    assert r.usage.completion_tokens == sum(t.completion_tokens for t in turns)


def test_streamed_completion(served: tuple[str, Path]) -> None:
    url, _ = served
    chunks = list(
        client(url).chat.completions.create(
            model="vote", messages=PROBLEM, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "The result is \\boxed{42}."
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    usage = [ch.usage for ch in chunks if ch.usage is not None]
    assert len(usage) == 1 and usage[0].total_tokens > 0


def test_turns_stream_as_they_finish_then_the_answer(served: tuple[str, Path]) -> None:
    url, transcript = served
    chunks = list(
        client(url).chat.completions.create(
            model="debate", messages=PROBLEM, stream=True, extra_body={"agentgraph": {"stream_turns": True}}
        )
    )
    turns = [ch.model_extra["agentgraph_turn"] for ch in chunks if ch.model_extra.get("agentgraph_turn")]
    first_content = next(i for i, ch in enumerate(chunks) if ch.choices and ch.choices[0].delta.content)
    assert len(turns) == 6 and first_content == 6  # every turn before the answer
    assert [t["round"] for t in turns] == [0, 0, 0, 1, 1, 1]
    assert all(t["answer"] == "42" and t["completion_tokens"] > 0 for t in turns)
    assert all(len(t["read"]) == 3 for t in turns if t["round"] == 1)
    finish = [ch for ch in chunks if ch.model_extra.get("agentgraph")]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    saved = load(transcript)[finish[0].model_extra["agentgraph"]["session"]].turns
    assert [t.id for t in saved] == [t["id"] for t in turns]


def test_sixteen_concurrent_requests_each_get_their_sessions_usage(served: tuple[str, Path]) -> None:
    url, transcript = served

    async def many() -> list[openai.types.chat.ChatCompletion]:
        c = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        questions = [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(16)]
        return list(
            await asyncio.gather(*(c.chat.completions.create(model="debate", messages=q) for q in questions))
        )

    replies = asyncio.run(many())
    sessions = load(transcript)
    for i, r in enumerate(replies):
        extra = r.model_extra["agentgraph"]
        assert extra["answer"] == str(2 * i)
        turns = sessions[extra["session"]].turns
        assert r.usage is not None and len(turns) == 6
        assert r.usage.total_tokens == sum(t.prompt_tokens + t.completion_tokens for t in turns)
    assert len({r.model_extra["agentgraph"]["session"] for r in replies}) == 16


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "debate", "messages": []}, 400, "messages: missing"),
        ({"model": "debate"}, 400, "messages: missing"),
        ({"model": "debate", "messages": [{"role": "system", "content": "hi"}]}, 400, "no user message"),
        ({"model": "nobody", "messages": PROBLEM}, 404, "is not served"),
        ({"model": "debate", "prompt": "What is 1 + 1?"}, 400, "messages"),
        ({"model": "debate", "messages": PROBLEM, "n": 3}, 400, "n: a team gives one answer"),
        ({"model": "debate", "messages": PROBLEM, "temperature": -2}, 400, "temperature"),
        ("not json{", 400, "not valid JSON"),
        ([1, 2], 400, "JSON object"),
        ("x" * (10 << 20), 413, "over"),
        ({"model": "debate", "messages": PROBLEM, "agentgraph": "turns"}, 400, "agentgraph: must be"),
    ],
)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    served: tuple[str, Path], body: object, status: int, message: str
) -> None:
    url, _ = served
    content = body if isinstance(body, str) else json.dumps(body)
    r = httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert client(url).chat.completions.create(model="vote", messages=PROBLEM).choices[0].message.content


def test_unknown_path_is_an_openai_404(served: tuple[str, Path]) -> None:
    r = httpx.post(f"{served[0]}/v1/completions", json={"model": "debate", "prompt": "x"})
    assert r.status_code == 404 and "error" in r.json()


def test_api_key_is_required_and_never_logged(tmp_path: Path) -> None:
    key = "sk-test-7f3a9c"
    proc, url = start(tmp_path, "--scripted", "tests.agents:calc", env={"AGENTGRAPH_API_KEY": key})
    try:
        with pytest.raises(openai.AuthenticationError):
            client(url).models.list()
        ok = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        assert ok.chat.completions.create(model="full:3", messages=PROBLEM).choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert key not in logs


def test_concurrency_limit_and_graceful_sigterm(tmp_path: Path) -> None:
    proc, url = start(
        tmp_path,
        "--scripted",
        "tests.agents:sleepy_calc",
        "--topology",
        "chain:3",
        "--rounds",
        "20",
        "--max-concurrency",
        "1",
    )

    async def two() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            body = {"model": "chain:3", "messages": PROBLEM}
            first = asyncio.ensure_future(c.post(f"{url}/v1/chat/completions", json=body))
            await asyncio.sleep(0.5)  # the first session is running (60 turns of 20 ms)
            second = await c.post(f"{url}/v1/chat/completions", json=body)
            proc.send_signal(signal.SIGTERM)  # while the first is still in flight
            return [await first, second]

    first, second = asyncio.run(two())
    assert second.status_code == 429 and second.json()["error"]["type"] == "rate_limit_error"
    assert first.status_code == 200 and first.json()["agentgraph"]["answer"] == "42"  # finished, not cut
    proc.wait(timeout=60)
    (transcript,) = tmp_path.rglob("transcripts.jsonl")
    (session,) = load(transcript).values()
    assert session.result is not None and len(session.turns) == 60
