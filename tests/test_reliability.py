from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import OpenAI, Scripted, ScriptedCall
from agentgraph.core.errors import BackendError
from agentgraph.core.retry import RetryPolicy
from agentgraph.graph.generators import full
from agentgraph.testing import Faulty
from agentgraph.testing.faulty import GARBAGE
from tests.agents import calc

FAST = RetryPolicy(attempts=3, initial_s=0, max_s=0, jitter_s=0)


async def soak(seed: int) -> tuple[list[ag.SessionResult], Faulty]:
    backend = Faulty(Scripted(default=calc), error_rate=0.10, timeout_rate=0.05, garbage_rate=0.05, seed=seed)
    team = ag.Team(full(3), rounds=2, retry=FAST)
    problems = [f"What is {i} + {i + 1}?" for i in range(300)]
    results = await ag.solve_many(
        team,
        problems,
        backend,
        golds=[str(2 * i + 1) for i in range(300)],
        session_ids=[f"s{i}" for i in range(300)],
    )
    return results, backend


async def test_soak_300_sessions_with_20_percent_faults() -> None:
    results, backend = await soak(seed=7)
    assert len(results) == 300 and all(r.rounds_run == 2 for r in results)
    turns = [t for r in results for t in r.turns]
    recorded_failures = sum(len(t.failed_attempts) for t in turns)
    garbage_turns = sum(t.text == GARBAGE for t in turns)
    injected = backend.injected
    assert injected["error"] + injected["timeout"] + injected["garbage"] > 0.15 * sum(
        t.attempts for t in turns
    )
    assert recorded_failures == injected["error"] + injected["timeout"]  # every injected fault is on a turn
    assert garbage_turns == injected["garbage"]
    assert all(t.answer is None for t in turns if t.text == GARBAGE)
    assert sum(r.correct for r in results if r.correct) > 280  # retries + majority absorb most faults
    again, _ = await soak(seed=7)
    assert [(r.answer, [t.failed_attempts for t in r.turns]) for r in again] == [
        (r.answer, [t.failed_attempts for t in r.turns]) for r in results
    ]


async def test_an_agent_that_always_fails_degrades_the_session() -> None:
    backend = Faulty(Scripted(default=calc), fail_agents={"a1"})
    r = await ag.solve(ag.Team(full(3), rounds=2, retry=FAST), "What is 2 + 2?", backend, gold="4")
    dead = [t for t in r.turns if t.agent == "a1"]
    assert all(
        t.error and "agent a1 is down" in t.error and t.attempts == 1 for t in dead
    )  # permanent: no retry
    assert r.correct and r.errors == 2


async def test_transient_errors_are_retried_then_given_up() -> None:
    calls = 0
    ids: list[str] = []

    def flaky(call: ScriptedCall) -> str:
        nonlocal calls
        calls += 1
        ids.append(call.request.request_id)
        raise BackendError("503", transient=True)

    r = await ag.solve(ag.Team(full(1), rounds=1, retry=FAST), "p", Scripted(default=flaky), session_id="s")
    (t,) = r.turns
    assert calls == 3 and t.attempts == 3 and len(t.failed_attempts) == 3 and t.error is not None
    # every attempt is a new request id (an aborted id is never reused inside an engine)
    assert len(set(ids)) == 3 and all(i.startswith("s:r0:a0:") for i in ids)
    assert [i.rsplit("-", 1)[1] for i in ids] == ["p1a1", "p1a2", "p1a3"]


async def test_per_request_timeout_cancels_and_retries() -> None:
    slow = Scripted(default=calc, latency_s=1.0)
    policy = RetryPolicy(attempts=2, initial_s=0, max_s=0, jitter_s=0, timeout_s=0.05)
    start = asyncio.get_running_loop().time()
    r = await ag.solve(ag.Team(full(1), rounds=1, retry=policy), "What is 1 + 1?", slow)
    assert asyncio.get_running_loop().time() - start < 0.5
    assert r.turns[0].attempts == 2 and all("TimeoutError" in f for f in r.turns[0].failed_attempts)


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ag.ConfigError, match="error_rate"):
        Faulty(Scripted(), error_rate=1.5)
    with pytest.raises(ag.ConfigError, match="add up"):
        Faulty(Scripted(), error_rate=0.6, timeout_rate=0.6)


async def test_api_key_is_redacted_from_errors_and_transcripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # a server that leaks the key it was sent
            body = f"bad gateway for {self.headers.get('Authorization')}".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AG_TEST_KEY", "sk-very-secret")
    try:
        backend = OpenAI(
            f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", api_key_env="AG_TEST_KEY"
        )
        assert "sk-very-secret" not in repr(backend)
        async with backend:
            with ag.TranscriptWriter(tmp_path / "t.jsonl") as w:
                r = await ag.solve(ag.Team(full(1), rounds=1, retry=FAST), "p", backend, writer=w)
    finally:
        server.shutdown()
    assert r.errors == 1 and "***" in (r.turns[0].error or "")
    assert "sk-very-secret" not in (tmp_path / "t.jsonl").read_text()
