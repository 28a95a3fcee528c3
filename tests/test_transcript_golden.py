"""Transcripts of a fixed scripted run, byte for byte, against the ones recorded before the hot path
was made lean (issue 28): a speed-up may not drop a field or change a value.

Timings (``started_s``, ``latency_s``, ``wall_s``) are removed first: they are the only fields that
differ between two runs. The run covers debate rounds with peers, a summarizer, a judge, partial
inter-round, a retried request, a failed agent and garbage text, so every kind of record is
written. After an intended change of the transcript format, write the file again with
``AGENTGRAPH_WRITE_GOLDEN=1 pytest tests/test_transcript_golden.py`` and review its diff.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import agentgraph as ag
from agentgraph.backends import Scripted
from agentgraph.eval.datasets import Problem
from agentgraph.eval.evaluation import evaluate
from agentgraph.graph.generators import chain, full
from agentgraph.testing.faulty import Faulty

GOLDEN = Path(__file__).parent / "golden" / "transcripts.jsonl"
TIMINGS = {"started_s", "latency_s", "wall_s"}


def untimed(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: untimed(v) for k, v in x.items() if k not in TIMINGS}
    if isinstance(x, list):
        return [untimed(v) for v in x]
    return x


def agent(call: Any) -> str:
    r = call.rng.random()
    if r < 0.6:
        return f"I add them. \\boxed{{{call.request.meta.problem.count('1') + 1}}}"
    if r < 0.8:
        return "Unsure, maybe \\boxed{7}"
    return "no answer here"


async def run(tmp: Path) -> list[str]:
    problems = [
        Problem(id=f"p{i}", question=f"What is {i} + 1{'1' * (i % 3)}?", answer=str(i + 1)) for i in range(6)
    ]
    teams = [
        ("full", ag.Team(full(3), rounds=2), {}),
        ("summary", ag.Team(full(3), rounds=2, inter_round="summarize", decision="judge"), {}),
        ("partial", ag.Team(full(4), rounds=3, inter_round="partial:2:agreement", early_stop=True), {}),
        (
            "chain",
            ag.Team(chain(3), rounds=1),
            dict(fail_agents={"a1"}, garbage_rate=0.2, error_rate=0.3),
        ),
    ]
    lines: list[str] = []
    for name, team, faults in teams:
        backend = Faulty(Scripted(default=agent, seed=3), seed=5, **faults)
        await evaluate(team, problems, backend, tmp / name, progress=False)
        # sorted: the order sessions interleave in is the scheduler's business, not the record's
        records = (tmp / name / "transcripts.jsonl").read_text().splitlines()
        lines += sorted(json.dumps({"team": name, **untimed(json.loads(r))}, sort_keys=True) for r in records)
    return lines


def test_a_fixed_scripted_run_writes_the_recorded_transcripts(tmp_path: Path) -> None:
    lines = asyncio.run(run(tmp_path))
    text = "\n".join(lines) + "\n"
    if os.environ.get("AGENTGRAPH_WRITE_GOLDEN"):
        GOLDEN.write_text(text)
    assert len(lines) > 100
    assert text == GOLDEN.read_text()
