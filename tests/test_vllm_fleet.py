"""Real-server reliability: a fleet member dies mid-eval; SIGTERM leaves no engine behind."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import OpenAI
from agentgraph.core.retry import RetryPolicy
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.eval.datasets import arith
from agentgraph.eval.evaluation import evaluate
from agentgraph.graph.generators import full
from tests.servers import engine_processes, free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    ports = [free_port(), free_port()]
    logs = [tmp_path_factory.mktemp("fleet") / f"vllm-{p}.log" for p in ports]
    procs = [start_server(p, log, max_model_len=1024) for p, log in zip(ports, logs, strict=True)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 360
        for url, proc, log in zip(urls, procs, logs, strict=True):
            wait_healthy(url, proc, log, deadline)
        yield [(f"{u}/v1", p) for u, p in zip(urls, procs, strict=True)]
    finally:
        for p in procs:
            stop(p)


async def test_eval_finishes_when_a_fleet_member_dies(
    fleet: list[tuple[str, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    (a, proc_a), (b, _) = fleet
    problems = arith("+", 2, 16, seed=5)
    team = ag.Team(
        full(2),
        rounds=2,
        sampling=SamplingOverrides(max_tokens=24),
        retry=RetryPolicy(attempts=3, initial_s=0.2, max_s=1.0),
    )
    async with OpenAI([a, b], eject_s=60) as backend:

        async def kill_a() -> None:
            await asyncio.sleep(4.0)  # mid-eval: both servers have requests in flight
            stop(proc_a, signal.SIGKILL)

        killer = asyncio.create_task(kill_a())
        m, results = await evaluate(team, problems, backend, tmp_path, progress=False)
        await killer
    assert proc_a.poll() is not None, "server A should have been killed during the eval"
    assert m.n == 16 and len(results) == 16  # no problem lost
    assert backend.ejections.get(a, 0) >= 1
    assert sum(r.errors for r in results) == 0  # every request that hit the dead server went elsewhere


def test_sigterm_stops_the_engine(tmp_path: Path) -> None:
    before = engine_processes()
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentgraph.cli",
            "eval",
            "--dataset",
            "arith:n=40",
            "--topology",
            "full:3",
            "--max-tokens",
            "48",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t = out / "transcripts.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (t.exists() and t.stat().st_size > 0):
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    assert code == 143
    deadline = time.monotonic() + 20
    while engine_processes() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not engine_processes() - before, "an engine process outlived the run"
    assert t.stat().st_size > 0  # what was written is kept for --resume
