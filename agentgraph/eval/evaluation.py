"""Evaluation: a team over a dataset, every session in flight, resumable, with exact accounting.

``evaluate`` writes into one run directory (or, with ``out=None``, keeps everything in memory — what
trainers use for their held-out curves):

- ``transcripts.jsonl`` — every session header, turn and result, appended and flushed (fsync'ed) as
  they happen; the session id is the problem id, so ``resume=True`` skips problems whose result is
  already on disk and re-runs only unfinished ones (their partial turns are superseded, never
  counted twice);
- ``metrics.json`` — :class:`~agentgraph.eval.metrics.Metrics`, written atomically (temp file + rename);
- with ``report=True``: ``report.md``/``report.html`` and their plots (:mod:`agentgraph.eval.reports`).

``compare`` evaluates several teams on the same problems, one after another (so each team's wall
time is its own), each into ``out/<name>``, and writes ``report.md`` with the accuracy-vs-tokens
(Pareto) plot. With ``budget="matched"`` (what the CLI does by default) it then answers, for every
team, "is it better than voting at the same cost?": it runs a pool of independent samples
(``out/matched-sc``: one sample per problem first, to measure a sample's tokens, then as many as
the most expensive team needs, at most ``max_samples``) and sets each team beside ``sc:N`` at the
team's measured mean tokens per problem (:mod:`agentgraph.eval.budget`), paired over the same problems.
``run_dir`` names a fresh run folder (``runs/<command>-<time>``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentgraph.backends.base import Backend
from agentgraph.core.atomic import write_text_atomic
from agentgraph.core.errors import ConfigError
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import SessionResult, TranscriptWriter, load
from agentgraph.eval.budget import MatchedRow, SamplePool, TokenMeasure, matched_row, session_tokens
from agentgraph.eval.datasets import Problem
from agentgraph.eval.metrics import Metrics, compute_metrics
from agentgraph.eval.reports import write_compare_report, write_run_report
from agentgraph.shapes.build import self_consistency_like
from agentgraph.team.team import Team


def run_dir(command: str, root: str | Path = "runs") -> Path:
    """``root/<command>-<YYYYmmdd-HHMMSS>``: where a command writes when no ``--out`` is given."""
    return Path(root) / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


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
    # a cancelled session (a served client went away) is not finished: a resumed run does it again
    return {
        sid: s.result
        for sid, s in load(transcript).items()
        if s.result is not None and s.result.decision.method != "cancelled"
    }


async def evaluate(
    team: Team,
    problems: Sequence[Problem],
    backend: Backend,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    name: str | None = None,
    session_prefix: str = "",
    report: bool = False,
) -> tuple[Metrics, list[SessionResult]]:
    """Run ``team`` on every problem (all in flight); metrics and results in the order of ``problems``.

    Parameters
    ----------
    out : path, optional
        The run directory (transcripts, metrics, report). ``None``: nothing is written.
    resume : bool
        Continue a run directory: problems whose result is on disk are not run again.
    name : str, optional
        The team's name in the metrics (default: ``team.describe()``).
    session_prefix : str
        Prepended to each problem id to make the session id (trainers evaluate the same problems
        at several steps on one engine).
    report : bool
        Also write ``report.md``/``report.html`` and plots into ``out``.
    """
    ids = [f"{session_prefix}{p.id}" for p in problems]
    # every prompt is measured here, before anything is written or sent
    sessions = scheduler.prepare(
        team, [p.question for p in problems], backend, golds=[p.answer for p in problems], session_ids=ids
    )
    start = time.perf_counter()
    if out is None:
        results = await scheduler.run(sessions, progress=progress)
        return compute_metrics(name or team.describe(), results, time.perf_counter() - start), results
    out = Path(out)
    transcript = prepare_out(out, resume=resume)
    # a resumed run's earlier results exist only on disk; this run's come back from the scheduler
    done = finished_results(transcript) if resume else {}
    todo = [s for s in sessions if s.session not in done]
    if todo:
        with TranscriptWriter(transcript, durable=True) as writer:
            for r in await scheduler.run(todo, writer=writer, progress=progress):
                done[r.session] = r
    results = [done[sid] for sid in ids]
    metrics = compute_metrics(name or team.describe(), results, time.perf_counter() - start)
    write_text_atomic(out / "metrics.json", metrics.model_dump_json(indent=2))
    if report:
        write_run_report(out, metrics, results, team.topology)
    return metrics, results


@dataclass
class Comparison:
    """What :func:`compare` measured: every team's metrics, the report, and (matched budget) each
    team beside self-consistency at its tokens plus the sample pool's curves
    (``k → (tokens per problem, maj@k, pass@k, accuracy of the first k)``)."""

    metrics: list[tuple[str, Metrics]]
    report: Path
    matched: list[MatchedRow] = field(default_factory=list)
    curves: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    pool_wall_s: float = 0.0

    def sc_curve(self) -> dict[int, dict[str, float]]:
        """The pool's curves keyed by name (what ``--json`` prints)."""
        return {
            k: {"tokens_per_problem": t, "maj_at_k": maj, "pass_at_k": pas, "first_k_voted": acc}
            for k, (t, maj, pas, acc) in self.curves.items()
        }


async def compare(
    teams: Sequence[tuple[str, Team]],
    problems: Sequence[Problem],
    backend: Backend,
    out: str | Path,
    *,
    title: str = "comparison",
    resume: bool = False,
    progress: bool = True,
    budget: Literal["none", "matched"] = "none",
    baseline: Callable[[int], Team] | None = None,
    match_on: TokenMeasure = "total",
    max_samples: int = 64,
) -> Comparison:
    """Evaluate each named team on ``problems`` into ``out/<name>`` (one after another, so each
    team's wall time is its own), with its report; then ``out/report.md``.

    Parameters
    ----------
    budget : ``"none"`` or ``"matched"``
        ``matched``: also run self-consistency at every team's measured token budget (see the
        module docstring) and report the paired differences.
    baseline : callable, optional
        ``n → Team`` of ``n`` independent samples; default ``sc:n`` with the first team's settings
        (:func:`agentgraph.shapes.build.self_consistency_like`).
    match_on : ``"total"`` or ``"completion"``
        Which tokens are matched: prompt + completion (default) or generated only.
    max_samples : int
        The most samples per problem the pool may take.
    """
    if budget not in ("none", "matched"):
        raise ConfigError("budget", f"{budget!r} is not none or matched", "use none or matched")
    if match_on not in ("total", "completion"):
        raise ConfigError("match_on", f"{match_on!r} is not total or completion", "use total or completion")
    if max_samples < 1:
        raise ConfigError("max_samples", f"{max_samples} is not ≥ 1", "use max_samples ≥ 1")
    out = Path(out)
    named: list[tuple[str, Metrics]] = []
    runs: list[tuple[str, list[SessionResult]]] = []
    for name, team in teams:
        if progress:
            print(f"== {name}: {team.describe()}", file=sys.stderr)
        folder = out / name.replace(":", "_").replace("/", "_")
        metrics, results = await evaluate(
            team, problems, backend, folder, resume=resume, progress=progress, name=name, report=True
        )
        named.append((name, metrics))
        runs.append((name, results))
    if budget == "none" or not teams:
        return Comparison(named, write_compare_report(out, title, named))
    make = baseline or (lambda n: self_consistency_like(teams[0][1], n))
    start = time.perf_counter()
    pool_runs = []
    folder = out / "matched-sc"
    if progress:
        print("== self-consistency pool at matched budgets: 1 sample per problem first", file=sys.stderr)
    _, first = await evaluate(
        make(1), problems, backend, folder / "pool-0", resume=resume, progress=progress, name="sc pool 0"
    )
    pool_runs.append(first)
    per_sample = max(1.0, sum(session_tokens(r, match_on) for r in first) / len(first))
    target = max(sum(session_tokens(r, match_on) for r in rs) / len(rs) for _, rs in runs)
    need = min(max_samples, math.ceil(1.1 * target / per_sample) + 1)
    if need > 1:
        if progress:
            print(f"== self-consistency pool: {need - 1} more samples per problem", file=sys.stderr)
        _, more = await evaluate(
            make(need - 1),
            problems,
            backend,
            folder / "pool-1",
            resume=resume,
            progress=progress,
            name="sc pool 1",
        )
        pool_runs.append(more)
    pool = SamplePool.from_results(pool_runs, match_on)
    matched = [matched_row(name, results, pool, match_on) for name, results in runs]
    curves = pool.curves()
    wall = time.perf_counter() - start
    report = write_compare_report(out, title, named, matched=matched, curves=curves, match_on=match_on)
    return Comparison(named, report, matched, curves, wall)
