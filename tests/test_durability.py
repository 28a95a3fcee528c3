"""kill -9 in the middle of `eval` and `train graph`: resuming completes with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from agentgraph.engine.transcript import SessionHeader, TranscriptWriter

ROOT = Path(__file__).resolve().parent.parent
SLOW = ["--backend", "scripted", "--scripted", "tests.agents:slow_calc"]
STAGGERED = ["--backend", "scripted", "--scripted", "tests.agents:staggered_calc"]


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentgraph.cli", *argv],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(proc: subprocess.Popen[str], ready: callable, timeout: float = 60) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # the torn line a kill leaves behind
            out.append(json.loads(line))
    return out


def test_eval_survives_kill_9(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "eval",
        "--dataset",
        "arith:n=40",
        "--topology",
        "full:3",
        "--out",
        str(out),
        "--json",
        *STAGGERED,
    ]
    t = out / "transcripts.jsonl"
    proc = start(*argv)
    kill_when(proc, lambda: t.exists() and sum(r["type"] == "result" for r in records(t)) >= 8)
    finished = sum(r["type"] == "result" for r in records(t))
    assert 8 <= finished < 40
    done = subprocess.run(
        [sys.executable, "-m", "agentgraph.cli", *argv, "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["n"] == 40 and summary["correct"] == 40
    results = Counter(r["session"] for r in records(t) if r["type"] == "result")
    assert len(results) == 40 and set(results.values()) == {1}  # nothing lost, nothing doubled


def test_train_graph_survives_kill_9(tmp_path: Path) -> None:
    out = tmp_path / "tg"
    argv = [
        "train",
        "graph",
        "--base",
        "chain:3",
        "--dataset",
        "arith:n=20",
        "--steps",
        "40",
        "--group",
        "4",
        "--problems-per-step",
        "1",
        "--select-problems",
        "0",
        "--rounds",
        "1",
        "--checkpoint-every",
        "5",
        "--out",
        str(out),
        "--json",
        *SLOW,
    ]
    proc = start(*argv)
    kill_when(proc, lambda: (out / "checkpoint.pt").exists() and len(records(out / "log.jsonl")) >= 12)
    done = subprocess.run(
        [sys.executable, "-m", "agentgraph.cli", *argv, "--resume"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 40
    steps = [r["step"] for r in records(out / "log.jsonl")]
    assert steps == list(range(1, 41))  # steps after the last checkpoint were redone once, not twice


def test_group_commit_fsyncs_once_for_everything_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []  # the file's size at each fsync: what that fsync made durable

    def counting_fsync(fd: int) -> None:
        time.sleep(0.05)  # long enough for the other committers to queue behind this one
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    path = tmp_path / "t.jsonl"
    header = SessionHeader(session="s", problem="p", topology="single", agents={"a0": "solver"}, rounds=1,
                           inter_round="none", decision="majority")  # fmt: skip
    with TranscriptWriter(path, durable=True, group_commit=True) as w:
        for _ in range(3):
            w.write(header)
        assert synced == []  # writes alone do not fsync

        async def five_commits() -> None:
            await asyncio.gather(*(w.commit() for _ in range(5)))

        asyncio.run(five_commits())
        assert synced == [path.stat().st_size]  # one fsync covered all three records and all five waiters
        asyncio.run(w.commit())
        assert len(synced) == 1  # nothing new: no fsync
        w.write(header)
    assert synced[-1] == path.stat().st_size and len(synced) == 2  # close syncs what nobody awaited


def test_an_acknowledged_completion_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    from tests.servers import start_serve

    proc, url = start_serve(tmp_path, "--scripted", "tests.agents:sleepy_calc", "--topology", "full:3")
    acknowledged: list[str] = []

    async def clients() -> None:
        async with httpx.AsyncClient(timeout=60) as c:

            async def one(i: int) -> None:
                while True:
                    body = {"model": "full:3", "messages": [{"role": "user", "content": f"What is {i} + 1?"}]}
                    r = await c.post(f"{url}/v1/chat/completions", json=body)
                    acknowledged.append(r.json()["id"])

            tasks = [asyncio.ensure_future(one(i)) for i in range(8)]
            while len(acknowledged) < 20:
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream of the other sessions
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(clients())
    proc.wait()
    (transcript,) = tmp_path.rglob("transcripts.jsonl")
    results = {r["session"] for r in records(transcript) if r["type"] == "result"}
    assert len(acknowledged) >= 20 and set(acknowledged) <= results
