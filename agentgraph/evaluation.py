"""Evaluation: a team over a dataset, every session in flight, resumable, with exact accounting.

``evaluate`` writes into one run directory:

- ``transcripts.jsonl`` — every session header, turn and result, appended and flushed (fsync'ed) as
  they happen; the session id is the problem id, so ``resume=True`` skips problems whose result is
  already on disk and re-runs only unfinished ones (their partial turns are superseded, never
  counted twice);
- ``metrics.json`` — :class:`Metrics`, written atomically (temp file + rename).

Metrics: accuracy with a 95% Wilson interval; maj@k over the agents' last-round answers (whatever the
decision rule); oracle (some agent right in the last round); agreement (all agents gave the same
parseable answer); per-agent and per-round accuracy; tokens per problem (prompt/completion, by agent,
round and edge); session latency p50/p95; tokens per solved problem.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from agentgraph.answers import answer_key, is_correct
from agentgraph.backends.base import Backend
from agentgraph.datasets import Problem
from agentgraph.decisions import vote
from agentgraph.errors import ConfigError
from agentgraph.team import Team
from agentgraph.transcript import SessionResult, TranscriptWriter, load


class Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str
    n: int
    correct: int
    accuracy: float
    ci95_low: float
    ci95_high: float
    maj_at_k: float
    oracle: float
    agreement: float
    unparseable: float
    per_agent_accuracy: dict[str, float]
    per_round_accuracy: dict[int, float]
    per_round_agent_accuracy: dict[int, float]
    prompt_tokens_per_problem: float
    completion_tokens_per_problem: float
    tokens_by_agent: dict[str, float]
    tokens_by_round: dict[int, float]
    tokens_by_edge: dict[str, float]
    tokens_per_solved: float | None
    latency_p50_s: float
    latency_p95_s: float
    errors: int
    wall_s: float = 0.0


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def compute_metrics(team_name: str, results: Sequence[SessionResult], wall_s: float = 0.0) -> Metrics:
    n = len(results)
    if n == 0:
        raise ConfigError("results", "no finished sessions", "run at least one problem")
    correct = sum(1 for r in results if r.correct)
    lo, hi = wilson(correct, n)
    maj = oracle = agree = unparse = 0
    agent_right: dict[str, int] = defaultdict(int)
    round_right: dict[int, int] = defaultdict(int)
    round_agent_right: dict[int, list[float]] = defaultdict(list)
    by_agent: dict[str, float] = defaultdict(float)
    by_round: dict[int, float] = defaultdict(float)
    by_edge: dict[str, float] = defaultdict(float)
    for r in results:
        gold = r.gold or ""
        last = [t for t in r.turns if t.kind == "agent" and t.round == r.rounds_run - 1]
        maj += bool(is_correct(vote(last, {}, r.session, "majority").answer, gold))
        oracle += any(is_correct(t.answer, gold) for t in last)
        keys = {answer_key(t.answer) for t in last}
        agree += len(keys) == 1 and None not in keys
        unparse += r.answer is None
        for t in last:
            agent_right[t.agent] += is_correct(t.answer, gold)
        for rnd in range(r.rounds_run):
            turns = [t for t in r.turns if t.kind == "agent" and t.round == rnd]
            round_right[rnd] += bool(is_correct(vote(turns, {}, r.session, "majority").answer, gold))
            round_agent_right[rnd].append(sum(is_correct(t.answer, gold) for t in turns) / max(1, len(turns)))
        for a, u in r.usage_by_agent.items():
            by_agent[a] += u.total_tokens / n
        for rnd, u in r.usage_by_round.items():
            by_round[rnd] += u.total_tokens / n
        for e, tok in r.tokens_by_edge.items():
            by_edge[e] += tok / n
    lat = np.array([r.wall_s for r in results])
    total_tokens = sum(r.usage.total_tokens for r in results)
    return Metrics(
        team=team_name,
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci95_low=lo,
        ci95_high=hi,
        maj_at_k=maj / n,
        oracle=oracle / n,
        agreement=agree / n,
        unparseable=unparse / n,
        per_agent_accuracy={a: k / n for a, k in sorted(agent_right.items())},
        per_round_accuracy={rnd: k / n for rnd, k in sorted(round_right.items())},
        per_round_agent_accuracy={rnd: float(np.mean(v)) for rnd, v in sorted(round_agent_right.items())},
        prompt_tokens_per_problem=sum(r.usage.prompt_tokens for r in results) / n,
        completion_tokens_per_problem=sum(r.usage.completion_tokens for r in results) / n,
        tokens_by_agent=dict(by_agent),
        tokens_by_round=dict(sorted(by_round.items())),
        tokens_by_edge=dict(by_edge),
        tokens_per_solved=total_tokens / correct if correct else None,
        latency_p50_s=float(np.percentile(lat, 50)),
        latency_p95_s=float(np.percentile(lat, 95)),
        errors=sum(r.errors for r in results),
        wall_s=wall_s,
    )


def prepare_out(out: Path, *, resume: bool) -> Path:
    """Create the run directory, refusing to mix runs unless resuming; check it is writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            "out", f"cannot write to {str(out)!r} ({e.strerror})", "choose a writable --out"
        ) from None
    transcript = out / "transcripts.jsonl"
    if transcript.exists() and transcript.stat().st_size > 0 and not resume:
        raise ConfigError(
            "out", f"{out} already holds a run", "pass --resume to continue it or choose another --out"
        )
    return transcript


def finished_results(transcript: Path) -> dict[str, SessionResult]:
    if not transcript.exists():
        return {}
    return {sid: s.result for sid, s in load(transcript).items() if s.result is not None}


def write_json_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


async def evaluate(
    team: Team,
    problems: Sequence[Problem],
    backend: Backend,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    name: str | None = None,
) -> tuple[Metrics, list[SessionResult]]:
    """Run ``team`` on every problem (all in flight), write transcripts and metrics into ``out``."""
    out = Path(out)
    for p in problems:  # refuse over-long prompts before anything is written or sent
        team.check_context(p.question, backend)
    transcript = prepare_out(out, resume=resume)
    done = finished_results(transcript)
    todo = [p for p in problems if p.id not in done]
    start = time.perf_counter()
    if todo:
        with TranscriptWriter(transcript, durable=True) as writer:
            await team.solve_many(
                [p.question for p in todo],
                backend,
                golds=[p.answer for p in todo],
                session_ids=[p.id for p in todo],
                writer=writer,
                progress=progress,
            )
    wall = time.perf_counter() - start
    done = finished_results(transcript)
    results = [done[p.id] for p in problems if p.id in done]
    metrics = compute_metrics(name or team.describe(), results, wall)
    write_json_atomic(out / "metrics.json", metrics.model_dump_json(indent=2))
    return metrics, results
