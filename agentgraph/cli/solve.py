"""The solving commands: ``run``, ``eval``, ``compare``, ``demo``, ``show`` — each a thin call into
the library (``solve``, ``evaluate``, ``compare``) plus what it prints."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgraph.cli.options import (
    CompareOptions,
    DemoOptions,
    EvalOptions,
    RunOptions,
    ServeOptions,
    ShowOptions,
    ViewOptions,
)
from agentgraph.core.errors import ConfigError
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import TranscriptWriter
from agentgraph.eval.budget import MatchedRow
from agentgraph.eval.datasets import load_dataset
from agentgraph.eval.evaluation import compare, evaluate, run_dir
from agentgraph.eval.metrics import Metrics
from agentgraph.eval.reports import COMPARE_HEADER, MATCHED_HEADER, compare_row, matched_cells
from agentgraph.roles.presets import choose
from agentgraph.shapes.build import shape

DEMO_TOPOLOGIES = ("single", "chain:3", "full:3", "tree:2x1")
VERDICT_STYLE = {"better than voting": "green", "worse than voting": "red"}


def console() -> Any:
    from rich.console import Console

    out = Console(stderr=False, highlight=False)
    if not out.is_terminal:  # logs and pipes: do not squeeze the table to 80 columns
        out = Console(stderr=False, highlight=False, width=160)
    return out


def print_compare(title: str, named: Sequence[tuple[str, Metrics]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for h in COMPARE_HEADER:
        table.add_column(h)
    for name, m in named:
        table.add_row(*compare_row(name, m))
    console().print(table)


def need_dataset(dataset: str | None) -> str:
    if not dataset:
        raise ConfigError("dataset", "missing", "pass --dataset, e.g. --dataset arith:n=50 or gsm8k")
    return dataset


async def cmd_run(o: RunOptions, problem: str) -> dict[str, Any]:
    from rich.table import Table

    team = o.make_team()
    backend = o.make_backend()
    async with backend:
        if o.transcript:
            # checked before the file is opened: a refused team leaves no transcript behind
            [session] = scheduler.prepare(team, [problem], backend, golds=[o.gold])
            with TranscriptWriter(o.transcript) as w:
                r = await session.run(w)
        else:
            r = await scheduler.solve(team, problem, backend, gold=o.gold)
    by_round = {rnd: r.answers(rnd) for rnd in range(r.rounds_run)}
    table = Table(title=team.describe())
    table.add_column("round")
    for a in team.agents:
        table.add_column(a)
    for rnd, answers in by_round.items():
        table.add_row(str(rnd), *[str(answers.get(a)) for a in team.agents])
    console().print(table)
    verdict = "" if r.correct is None else ("  (right)" if r.correct else f"  (wrong; gold {r.gold})")
    print(f"team answer ({r.decision.method}): {r.answer}{verdict}")
    print(
        f"tokens: {r.usage.prompt_tokens} prompt + {r.usage.completion_tokens} completion, "
        f"{r.usage.requests} requests, {r.wall_s:.1f} s, {r.errors} failed"
    )
    return {
        "answer": r.answer,
        "correct": r.correct,
        "answers_by_round": by_round,
        "session": r.session,
        "prompt_tokens": r.usage.prompt_tokens,
        "completion_tokens": r.usage.completion_tokens,
        "requests": r.usage.requests,
        "errors": r.errors,
        "wall_s": round(r.wall_s, 3),
        "transcript": o.transcript,
        "preset": o.model_preset().name,
        "thinking_tokens": r.usage.thinking_tokens,
        "answer_tokens": r.usage.answer_tokens,
    }


async def cmd_eval(o: EvalOptions) -> dict[str, Any]:
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit)  # bad data before any engine
    team = o.make_team()
    out = Path(o.out) if o.out else run_dir("eval")
    async with o.make_backend(out=out) as backend:
        m, _ = await evaluate(team, problems, backend, out, resume=o.resume, name=o.topology, report=True)
    print_compare(f"{o.dataset}: {m.n} problems", [(o.topology, m)])
    print(f"report: {out / 'report.md'}")
    return {**m.model_dump(), "report": str(out / "report.md"), "out": str(out)}


def print_matched(rows: Sequence[MatchedRow], match_on: str) -> None:
    from rich.table import Table

    table = Table(title=f"Is the team better than voting at the same cost? ({match_on} tokens matched)")
    for h in MATCHED_HEADER:
        table.add_column(h)
    for r in rows:
        cells = matched_cells(r)
        style = VERDICT_STYLE.get(cells[-1])
        table.add_row(*cells[:-1], f"[{style}]{cells[-1]}[/{style}]" if style else cells[-1])
    console().print(table)


async def _compare(o: CompareOptions, specs: Sequence[str], out: Path, title: str) -> dict[str, Any]:
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit)
    teams = [(s, o.make_team(s)) for s in specs]  # every topology is checked before the engine starts
    o.make_team("sc:1")  # and the matched-budget baseline
    async with o.make_backend(out=out) as backend:
        c = await compare(
            teams,
            problems,
            backend,
            out,
            title=title,
            resume=o.resume,
            budget=o.budget,
            baseline=lambda n: o.make_team(f"sc:{n}"),
            match_on=o.match_on,
            max_samples=o.max_samples,
        )
    named, report = c.metrics, c.report
    print_compare(title, named)
    if c.matched:
        print_matched(c.matched, o.match_on)
    print(f"report: {report}")
    matched = {r.team: r for r in c.matched}
    rows = [
        {
            "topology": n,
            "accuracy": m.accuracy,
            "ci95": [m.ci95_low, m.ci95_high],
            "n": m.n,
            "prompt_tokens_per_problem": m.prompt_tokens_per_problem,
            "completion_tokens_per_problem": m.completion_tokens_per_problem,
            "wall_s": m.wall_s,
            "agreement": m.agreement,
            "oracle": m.oracle,
            "maj_at_k": m.maj_at_k,
            "per_agent_accuracy": m.per_agent_accuracy,
            "pass_at": m.pass_at,
            "maj_at": m.maj_at,
            "effects": m.effects,
            "stages": m.stages,
            "tokens_p50": m.tokens_p50,
            "tokens_p95": m.tokens_p95,
            "sc_matched": matched[n].model_dump(exclude={"team"}) if n in matched else None,
        }
        for n, m in named
    ]
    return {
        "dataset": o.dataset,
        "rows": rows,
        "report": str(report),
        "budget": o.budget,
        "match_on": o.match_on,
        "sc_curve": c.sc_curve(),
        "sc_pool_wall_s": c.pool_wall_s,
    }


async def cmd_compare(o: CompareOptions) -> dict[str, Any]:
    need_dataset(o.dataset)
    specs = [s.strip() for s in (o.topologies or "").split(",")] if o.topologies else []
    if "" in specs:
        raise ConfigError("topologies", f"{o.topologies!r} has an empty item", "e.g. single,chain:3,full:3")
    if not specs:
        raise ConfigError("topologies", "missing", "pass --topologies single,chain:3,full:3")
    out = Path(o.out) if o.out else run_dir("compare")
    return await _compare(o, specs, out, f"{o.dataset} (limit {o.limit})")


async def cmd_demo(o: DemoOptions) -> dict[str, Any]:
    n = o.limit or 8
    dataset = f"arith:ops=+,digits=2,n={n},seed={o.seed}"
    settings = CompareOptions.model_validate(
        {**o.model_dump(exclude={"limit", "out"}), "dataset": dataset, "rounds": 2, "max_tokens": 32}
    )
    out = Path(o.out) if o.out else run_dir("demo")
    print(
        f"demo: {', '.join(DEMO_TOPOLOGIES)} on {n} generated arithmetic problems, "
        f"2 rounds, on {o.backend} ({o.model or 'embedded SmolLM2-135M-Instruct'}); "
        + ("then self-consistency at each team's tokens" if o.budget == "matched" else "no matched budget"),
        file=sys.stderr,
    )
    return await _compare(settings, DEMO_TOPOLOGIES, out, f"demo: {dataset}")


async def cmd_show(o: ShowOptions, spec: str) -> dict[str, Any]:
    topo = shape(spec, role=o.role).topology  # shapes too (a cascade shows all its stages)
    gens = topo.generations()
    print(
        f"{topo.graph.get('name')}: {len(topo)} agents, {len(topo.edges_of('spatial'))} spatial edges, "
        f"{len(topo.edges_of('temporal'))} temporal edges"
    )
    for i, g in enumerate(gens):
        print(f"  generation {i}: " + ", ".join(f"{a} ({topo.role_of(a)})" for a in g))
    png = str(topo.draw(o.png)) if o.png else None
    if png:
        print(f"picture: {png}")
    preset = choose(o.preset, o.model)
    shown = preset.model_dump(exclude={"match"}, exclude_none=True)
    shown["sampling"] = preset.sampling.model_dump(exclude_none=True)
    print(f"preset for {o.model or 'the embedded model'}: {preset.name} ({preset.source})")
    for k, v in shown.items():
        if k not in ("name", "source"):
            print(f"  {k}: {v}")
    return {
        "preset": shown,
        "name": topo.graph.get("name"),
        "agents": len(topo),
        "spatial_edges": len(topo.edges_of("spatial")),
        "temporal_edges": len(topo.edges_of("temporal")),
        "generations": gens,
        "png": png,
    }


def check_listen(host: str, port: int) -> None:
    """Refuse an address this machine cannot listen on (unknown host, port taken or privileged)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
    except OSError as e:
        raise ConfigError(
            "host", f"cannot listen on {host}:{port} ({e.strerror or e})", "pick another --host or --port"
        ) from None


async def cmd_serve(o: ServeOptions) -> dict[str, Any]:
    """Serve the teams until SIGTERM/Ctrl-C (uvicorn finishes the requests in flight first)."""
    import os
    import signal

    import uvicorn

    from agentgraph.serve.server import create_app

    teams = o.served_teams()  # every team is checked before the engine starts
    check_listen(o.host, o.port)  # and the address: a bad one is found before anything is written
    out = Path(o.out) if o.out else run_dir("serve")
    out.mkdir(parents=True, exist_ok=True)
    transcript = out / "transcripts.jsonl"
    async with o.make_backend(out=out) as backend:
        app = create_app(
            teams,
            backend,
            transcript=transcript,
            api_key=os.environ.get("AGENTGRAPH_API_KEY") or None,
            max_concurrency=o.max_concurrency,
            max_body_bytes=o.max_body_bytes,
            request_timeout=o.request_timeout,
        )
        config = uvicorn.Config(
            app, host=o.host, port=o.port, log_level="warning", timeout_graceful_shutdown=30
        )
        server = uvicorn.Server(config)
        print(
            f"serving {', '.join(teams)} at http://{o.host}:{o.port}/v1 (transcripts: {transcript})",
            file=sys.stderr,
            flush=True,
        )
        # uvicorn re-raises the signal it caught once its graceful shutdown is done; a no-op handler
        # here lets this function return, so the engine below is shut down instead of orphaned
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            await server.serve()
        finally:
            signal.signal(signal.SIGTERM, previous)
    return {"served": list(teams), "url": f"http://{o.host}:{o.port}/v1", "transcript": str(transcript)}


async def cmd_view(o: ViewOptions, run: str) -> dict[str, Any]:
    """Write the viewer; with ``--serve``, serve its folder on 127.0.0.1 until Ctrl-C."""
    import asyncio
    import functools
    import http.server

    from agentgraph.serve.viewer import collect, write_viewer

    path = write_viewer(run, o.out)
    n = len(collect(Path(run))["sessions"])
    print(f"viewer: {path} ({n} sessions; open it in a browser, it needs no network)")
    url = None
    if o.serve:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", o.port), handler)
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        print(f"serving {url} (Ctrl-C stops)", flush=True)
        try:
            await asyncio.to_thread(server.serve_forever)
        finally:
            server.shutdown()
    return {"view": str(path), "sessions": n, "url": url}
