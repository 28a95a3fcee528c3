"""`agentgraph serve` as a real subprocess, driven by the official `openai` client (scripted agents:
the server's own behaviour; the embedded-model version runs the same client against vLLM)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import hypothesis.strategies as st
import openai
import pytest

from agentgraph import load
from agentgraph.engine.transcript import SessionTranscript
from agentgraph.serve.requests import HONOURED, NEUTRAL, REFUSED, fields
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


def post(url: str, content: str | bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def ok(body: dict[str, object]) -> dict[str, object]:
    return {"model": "debate", "messages": PROBLEM, **body}


SYSTEM = {"role": "system", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "42"}
IMAGE = {"type": "image_url", "image_url": {"url": "x"}}
DEEP = "[" * 5000 + "]" * 5000
KEYS = st.sampled_from([*sorted(fields()), "role", "content", "x"])

HOSTILE: list[tuple[str, object, int, str]] = [
    ("empty messages", {"model": "debate", "messages": []}, 400, "messages: missing"),
    ("no messages", {"model": "debate"}, 400, "messages: missing"),
    ("system only", ok({"messages": [SYSTEM]}), 400, "messages.0.role"),
    ("a conversation", ok({"messages": [*PROBLEM, ASSISTANT, *PROBLEM]}), 400, "messages.1.role"),
    ("two user messages", {"model": "debate", "messages": PROBLEM * 2}, 400, "2 user messages"),
    ("image part", ok({"messages": [{"role": "user", "content": [IMAGE]}]}), 400, "messages.0.content.0"),
    ("blank problem", ok({"messages": [{"role": "user", "content": "  "}]}), 400, "has no text"),
    ("message not an object", ok({"messages": ["What is 1 + 1?"]}), 400, "messages.0"),
    ("unserved model", {"model": "nobody", "messages": PROBLEM}, 404, "is not served"),
    ("a completions payload", {"model": "debate", "prompt": "What is 1 + 1?"}, 400, "messages"),
    ("n > 1", ok({"n": 3}), 400, "n: a team gives one answer"),
    ("negative temperature", ok({"temperature": -2}), 400, "temperature"),
    ("temperature as a string", ok({"temperature": "0.5"}), 400, "temperature"),
    ("n as a boolean", ok({"n": True}), 400, "n"),
    ("max_tokens as a float", ok({"max_tokens": 5.0}), 400, "max_tokens"),
    ("stream as a string", ok({"stream": "yes"}), 400, "stream"),
    ("top_logprobs > 0", ok({"logprobs": True, "top_logprobs": 5}), 400, "top_logprobs"),
    ("seed too large", ok({"seed": 2**40}), 400, "seed"),
    ("unknown field", ok({"foo": 1}), 400, "foo: not a field"),
    ("vLLM-only field", ok({"repetition_penalty": 1.1}), 400, "repetition_penalty: not a field"),
    ("agentgraph not an object", ok({"agentgraph": "turns"}), 400, "agentgraph: "),
    ("agentgraph unknown option", ok({"agentgraph": {"turns": True}}), 400, "agentgraph: must be"),
    ("tools", ok({"tools": [{"type": "function", "function": {"name": "f"}}]}), 400, "tools: not supported"),
    ("json mode", ok({"response_format": {"type": "json_object"}}), 400, "response_format"),
    ("tool_choice auto", ok({"tool_choice": "auto"}), 400, "tool_choice"),
    ("a penalty", ok({"frequency_penalty": 0.5}), 400, "frequency_penalty"),
    ("reasoning effort", ok({"reasoning_effort": "high"}), 400, "thinking budget"),
    ("audio", ok({"modalities": ["text", "audio"]}), 400, "modalities"),
    ("not JSON", "not json{", 400, "not valid JSON"),
    ("truncated", json.dumps(ok({}))[:-7], 400, "not valid JSON"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, 400, "not valid JSON"),
    ("deep in a field", json.dumps(ok({"metadata": "DEEP"})).replace('"DEEP"', DEEP), 400, "not valid JSON"),
    ("NaN", json.dumps(ok({})).replace("}", ', "temperature": NaN}', 1), 400, "not valid JSON"),
    ("not UTF-8", json.dumps(ok({})).encode().replace(b"What", b"\xff\xfe"), 400, "not valid JSON"),
    ("UTF-16", json.dumps(ok({})).encode("utf-16"), 400, "not valid JSON"),
    ("lone surrogate", json.dumps(ok({})).replace("What", "\\ud800"), 400, "not valid JSON"),
    ("NUL", "\x00", 400, "not valid JSON"),
    ("empty body", "", 400, "not valid JSON"),
    ("a list", [1, 2], 400, "JSON object"),
    ("a number", 7, 400, "JSON object"),
    ("too large", "x" * (10 << 20), 413, "over"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_openai_errors_and_the_server_keeps_serving(
    served: tuple[str, Path], body: object, status: int, message: str
) -> None:
    url, _ = served
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    r = post(url, content)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert client(url).chat.completions.create(model="vote", messages=PROBLEM).choices[0].message.content


def test_every_field_of_the_wrong_type_is_a_400_naming_it(served: tuple[str, Path]) -> None:
    url, _ = served
    for field in sorted(fields()):
        body = {"model": "debate", "messages": PROBLEM, field: [[[]]]}  # a list of lists fits no field
        r = post(url, json.dumps(body))
        assert r.status_code == 400, (field, r.text)
        assert r.json()["error"]["param"].split(".")[0] == field, (field, r.text)


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_every_refused_field_names_itself_and_says_what_to_do(served: tuple[str, Path], field: str) -> None:
    value = {"tools": [{"type": "function", "function": {"name": "f"}}],
             "functions": [{"name": "f"}], "audio": {"voice": "alloy", "format": "wav"},
             "prediction": {"type": "content", "content": "x"}, "web_search_options": {},
             "reasoning_effort": "low", "verbosity": "low", "prompt_cache_key": "k",
             "prompt_cache_retention": "24h", "prompt_cache_options": {},
             "moderation": {"model": "m"}}.get(field, "x")  # fmt: skip
    r = post(served[0], json.dumps(ok({field: value})))
    error = r.json()["error"]
    assert r.status_code == 400 and error["param"] == field, r.text
    assert error["code"] == "unsupported_field" and REFUSED[field] in error["message"], r.text


def test_the_readme_table_lists_every_field() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("| field | what the team does") :]
    table = table[: table.index("\n\n")]
    named = set(re.findall(r"^\| `([a-z_]+)`", table, flags=re.M))
    assert named == set(fields()), set(fields()) ^ named
    assert set(HONOURED) | set(NEUTRAL) | set(REFUSED) == set(fields())


def test_neutral_values_and_honoured_fields(served: tuple[str, Path]) -> None:
    url, transcript = served
    neutral = {"frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "tool_choice": "none",
               "response_format": {"type": "text"}, "modalities": ["text"], "store": False,
               "service_tier": "auto", "parallel_tool_calls": True}  # fmt: skip
    r = post(url, json.dumps(ok(neutral)))
    assert r.status_code == 200, r.text
    # stop: every agent's turn ends at it ("The result is \boxed{42}." stops before "is")
    r = post(url, json.dumps(ok({"stop": [" is"], "max_completion_tokens": 50})))
    assert r.status_code == 200 and r.json()["agentgraph"]["answer"] is None, r.text
    # user and metadata go to the transcript header; logprobs come with the deciding turn
    r = post(url, json.dumps(ok({"user": "u-7", "metadata": {"run": "a"}, "logprobs": True})))
    body = r.json()
    assert r.status_code == 200, r.text
    session = load(transcript)[body["agentgraph"]["session"]]
    assert session.header.client == {"user": "u-7", "metadata": {"run": "a"}}
    decided = session.result.answer_turn() if session.result else None
    assert decided is not None and decided.logprobs is not None
    content = body["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == [f"token_id:{i}" for i in decided.completion_token_ids]
    assert [c["logprob"] for c in content] == decided.logprobs


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
    assert int(second.headers["retry-after"]) >= 1
    assert first.status_code == 200 and first.json()["agentgraph"]["answer"] == "42"  # finished, not cut
    proc.wait(timeout=60)
    (transcript,) = tmp_path.rglob("transcripts.jsonl")
    (session,) = load(transcript).values()
    assert session.result is not None and len(session.turns) == 60


def test_the_same_seed_repeats_a_session_and_another_seed_need_not(tmp_path: Path) -> None:
    proc, url = start(tmp_path, "--scripted", "tests.agents:noisy", "--topology", "full:5")
    try:
        bodies = [
            json.dumps({"model": "full:5", "messages": PROBLEM, "seed": seed}) for seed in (5, 5, 6, 7, 8)
        ]
        rounds = [post(url, b).json()["agentgraph"]["answers_by_round"] for b in bodies]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert rounds[0] == rounds[1]
    assert any(r != rounds[0] for r in rounds[2:])  # 5 agents × 60%: four seeds alike is (far) under 1e-3


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A team of 150 turns of 20 ms (3 s at least) behind a 1.5 s request timeout."""
    tmp = tmp_path_factory.mktemp("slow")
    proc, url = start(
        tmp, "--scripted", "tests.agents:sleepy_calc", "--topology", "chain:3", "--rounds", "50",
        "--request-timeout", "1.5",
    )  # fmt: skip
    yield url, next(tmp.glob("run-*")) / "transcripts.jsonl"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def settled(url: str) -> dict[str, object]:
    """/health once no session runs (the cancelled ones have been recorded)."""
    deadline = time.monotonic() + 20
    while (h := httpx.get(f"{url}/health", timeout=5).json())["sessions_running"]:
        assert time.monotonic() < deadline, h
        time.sleep(0.05)
    return dict(h)


def abandon(url: str, body: dict[str, object], after_s: float) -> None:
    """Send a non-streaming request and hang up ``after_s`` later, before the answer."""
    raw = json.dumps(body).encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        time.sleep(after_s)


def cancelled(transcript: Path, why: str) -> list[SessionTranscript]:
    return [
        s
        for s in load(transcript).values()
        if s.result is not None
        and s.result.decision.method == "cancelled"
        and why in (s.result.failure or "")
    ]


def test_a_request_abandoned_mid_session_is_cancelled_and_recorded(slow: tuple[str, Path]) -> None:
    url, transcript = slow
    before = len(cancelled(transcript, "disconnected"))
    abandon(url, {"model": "chain:3", "messages": PROBLEM}, 0.4)  # a few turns in
    health = settled(url)
    assert health["sessions_running"] == 0 and health["requests_in_flight"] == 0
    (session, *_) = cancelled(transcript, "disconnected")[before:]
    assert session.result is not None and 0 < len(session.turns) < 150
    assert session.result.answer is None


def test_a_stream_dropped_after_its_first_chunk_is_cancelled_and_recorded(slow: tuple[str, Path]) -> None:
    url, transcript = slow
    before = len(cancelled(transcript, "disconnected"))
    body = {"model": "chain:3", "messages": PROBLEM, "stream": True, "agentgraph": {"stream_turns": True}}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        first = next(line for line in r.iter_lines() if line.startswith("data:"))
    assert "agentgraph_turn" in first
    health = settled(url)
    assert health["sessions_running"] == 0 and health["requests_in_flight"] == 0
    (session, *_) = cancelled(transcript, "disconnected")[before:]
    assert session.result is not None and 0 < len(session.turns) < 150


def test_a_request_over_the_timeout_is_a_504_and_its_session_recorded(slow: tuple[str, Path]) -> None:
    url, transcript = slow
    before = len(cancelled(transcript, "timed out"))
    t0 = time.monotonic()
    r = post(url, json.dumps({"model": "chain:3", "messages": PROBLEM}))
    assert r.status_code == 504 and time.monotonic() - t0 < 2.9, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.json()["error"]["type"] == "timeout_error"
    assert settled(url)["requests_in_flight"] == 0
    (session, *_) = cancelled(transcript, "timed out")[before:]
    assert session.result is not None and "--request-timeout" in (session.result.failure or "")


@hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
            max_leaves=20,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {"model": st.just("vote"), "messages": st.just(PROBLEM)},
            optional={
                f: st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                for f in sorted(fields() - {"model", "messages"})
            },
        ).map(json.dumps),
    )
)
def test_fuzzed_bodies_never_get_a_5xx_nor_drop_the_connection(
    served: tuple[str, Path], fuzz_client: httpx.Client, body: str | bytes
) -> None:
    r = fuzz_client.post(f"{served[0]}/v1/chat/completions", content=body)  # a dropped connection raises
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as c:
        yield c  # one keep-alive connection: a request that drops it fails the next
