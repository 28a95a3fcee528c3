"""A self-contained HTML viewer of a run: ``agentgraph view RUN`` writes ``RUN/view.html``.

One file, no network at view time: the run's data is embedded as JSON and the viewer's JavaScript
and CSS (``agentgraph/serve/static/viewer.js``, ``viewer.css``, shipped in the package) are inlined.
``RUN`` is an ``eval`` run directory, a ``compare``/``demo`` directory (one team per subfolder), a
``serve`` directory, or a training run (``log.jsonl``).

The page shows the sessions (filter: all / correct / wrong / disagreement / failed) and, for one
session, per round the graph of the edges actually read that round (a turn's ``read`` list: who it
read, from which round), failed turns marked, each agent's messages (thinking folded), answers per
round, the decision, and tokens per agent and per edge. A training run adds its learning curves and
the edge probabilities over steps (from ``log.jsonl``).

The graph is SVG with data attributes (``g.agent[data-agent][data-failed]``,
``line.edge[data-from][data-to][data-round]``) so a browser test can check what is drawn.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import Turn
from agentgraph.engine.transcript import SessionTranscript, load


def _turn(t: Turn) -> dict[str, Any]:
    return {**t.brief(), "thinking": t.thinking, "final": t.final}


def _session(team: str, s: SessionTranscript) -> dict[str, Any]:
    r, h = s.result, s.header
    last = r.rounds_run - 1 if r is not None else -1
    answers = {str(t.answer) for t in s.turns if t.kind == "agent" and t.round == last}
    agents = dict(h.agents)
    for t in s.turns:  # graders, judges, summaries and search slots speak too
        agents.setdefault(t.agent, t.role)
    return {
        "team": team,
        "session": h.session,
        "problem": h.problem,
        "gold": h.gold,
        "topology": h.topology,
        "agents": agents,
        "turns": [_turn(t) for t in s.turns],
        "answer": r.answer if r else None,
        "correct": r.correct if r else None,
        "decision": r.decision.model_dump() if r else None,
        "rounds_run": r.rounds_run if r else 0,
        "failed": r is None or r.failure is not None or r.errors > 0,
        "disagreement": len(answers) > 1,
        "usage_by_agent": {a: u.model_dump() for a, u in r.usage_by_agent.items()} if r else {},
        "tokens_by_edge": r.tokens_by_edge if r else {},
        "total_tokens": r.usage.total_tokens if r else 0,
    }


def collect(run: Path) -> dict[str, Any]:
    """The data the viewer embeds: sessions of every transcript under ``run``, and the training log."""
    transcripts = sorted(run.rglob("transcripts.jsonl"))
    log = run / "log.jsonl"
    if not transcripts and not log.exists():
        raise ConfigError(
            "run", f"{run} holds no transcripts.jsonl or log.jsonl", "name an eval, compare or train run"
        )
    sessions = []
    for path in transcripts:
        team = str(path.parent.relative_to(run)) if path.parent != run else run.name
        sessions += [_session(team, s) for s in load(path).values()]
    steps = []
    if log.exists():
        steps = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"run": run.name, "sessions": sessions, "steps": steps}


def write_viewer(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the viewer of ``run`` (default ``RUN/view.html``) and return its path."""
    run = Path(run)
    if not run.is_dir():
        raise ConfigError("run", f"{run} is not a directory", "name a run directory, e.g. runs/demo-…")
    data = json.dumps(collect(run)).replace("</", "<\\/")  # the JSON cannot close the script element
    static = files("agentgraph.serve") / "static"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(run.name)} — agentgraph</title>"
        f"<style>{static.joinpath('viewer.css').read_text(encoding='utf-8')}</style></head><body>"
        "<div id='app'></div>"
        f"<script id='data' type='application/json'>{data}</script>"
        f"<script>{static.joinpath('viewer.js').read_text(encoding='utf-8')}</script></body></html>"
    )
    path = Path(out) if out else run / "view.html"
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["collect", "write_viewer"]
