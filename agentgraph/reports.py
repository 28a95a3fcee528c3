"""Reports: ``report.md`` + ``report.html`` per run, and a side-by-side comparison.

A run report has the metrics table, the topology picture, a per-round accuracy plot and excerpts of
the problems on which the agents disagreed. Plots are matplotlib PNGs beside the report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from agentgraph.metrics import Metrics
from agentgraph.plotting import pyplot
from agentgraph.topology import Topology
from agentgraph.transcript import SessionResult


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def summary_rows(metrics: Metrics) -> list[tuple[str, str]]:
    m = metrics
    return [
        ("problems", str(m.n)),
        ("accuracy (95% CI)", f"{pct(m.accuracy)} ({pct(m.ci95_low)}–{pct(m.ci95_high)})"),
        ("maj@k of agents", pct(m.maj_at_k)),
        ("oracle (any agent right)", pct(m.oracle)),
        ("agreement", pct(m.agreement)),
        ("unparseable team answers", pct(m.unparseable)),
        ("prompt tokens / problem", f"{m.prompt_tokens_per_problem:.0f}"),
        ("completion tokens / problem", f"{m.completion_tokens_per_problem:.0f}"),
        ("tokens / solved problem", "–" if m.tokens_per_solved is None else f"{m.tokens_per_solved:.0f}"),
        ("latency p50 / p95", f"{m.latency_p50_s:.1f} s / {m.latency_p95_s:.1f} s"),
        ("wall time", f"{m.wall_s:.1f} s"),
        ("failed requests", str(m.errors)),
    ]


def plot_rounds(metrics: Metrics, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rounds = sorted(metrics.per_round_accuracy)
    ax.plot(rounds, [metrics.per_round_accuracy[r] for r in rounds], "o-", label="majority of agents")
    ax.plot(rounds, [metrics.per_round_agent_accuracy[r] for r in rounds], "s--", label="mean agent")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_xticks(rounds)
    ax.set_ylim(0, 1)
    ax.set_title(f"accuracy by round — {metrics.team}", fontsize=8)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def disagreements(results: Sequence[SessionResult], limit: int = 5, chars: int = 240) -> list[str]:
    out = []
    for r in results:
        answers = r.answers()
        if len({a for a in answers.values()}) <= 1:
            continue
        lines = [
            f"**{r.session}** — gold `{r.gold}`, team `{r.answer}` ({'right' if r.correct else 'wrong'})",
            "",
        ]
        for t in r.turns:
            if t.kind == "agent" and t.round == r.rounds_run - 1:
                text = " ".join(t.text.split())[-chars:]
                lines.append(f"- {t.agent} → `{t.answer}`: …{text}")
        out.append("\n".join(lines))
        if len(out) >= limit:
            break
    return out


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2em .6em}"
)


def write_run_report(
    out: Path, metrics: Metrics, results: Sequence[SessionResult], topology: Topology
) -> Path:
    topo_png = topology.draw(out / "topology.png")
    rounds_png = plot_rounds(metrics, out / "rounds.png")
    rows = summary_rows(metrics)
    agents = [(a, pct(v)) for a, v in metrics.per_agent_accuracy.items()]
    excerpts = disagreements(results)
    md = [
        f"# {metrics.team}",
        "",
        _md_table(("metric", "value"), rows),
        "",
        "## Per-agent accuracy (last round)",
        "",
        _md_table(("agent", "accuracy"), agents),
        "",
        f"![topology]({topo_png.name})",
        f"![rounds]({rounds_png.name})",
        "",
        "## Disagreements",
        "",
        *(excerpts or ["(none: the agents always agreed)"]),
        "",
    ]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    body = (
        f"<h1>{html.escape(metrics.team)}</h1>{_html_table(('metric', 'value'), rows)}"
        f"<h2>Per-agent accuracy</h2>{_html_table(('agent', 'accuracy'), agents)}"
        f"<p><img src='{topo_png.name}'> <img src='{rounds_png.name}'></p><h2>Disagreements</h2>"
        + "".join(f"<pre>{html.escape(e)}</pre>" for e in excerpts)
    )
    (out / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><style>{_CSS}</style>{body}", encoding="utf-8"
    )
    return out / "report.md"


COMPARE_HEADER = (
    "team",
    "accuracy (95% CI)",
    "prompt tok/problem",
    "completion tok/problem",
    "wall s",
    "agreement",
    "oracle",
    "per-agent accuracy",
)


def compare_row(name: str, m: Metrics) -> list[str]:
    per_agent = " ".join(f"{a}:{100 * v:.0f}" for a, v in m.per_agent_accuracy.items())
    return [
        name,
        f"{pct(m.accuracy)} ({pct(m.ci95_low)}–{pct(m.ci95_high)})",
        f"{m.prompt_tokens_per_problem:.0f}",
        f"{m.completion_tokens_per_problem:.0f}",
        f"{m.wall_s:.1f}",
        pct(m.agreement),
        pct(m.oracle),
        per_agent,
    ]


def write_compare_report(out: Path, title: str, named: Sequence[tuple[str, Metrics]]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, m in named:
        tokens = m.prompt_tokens_per_problem + m.completion_tokens_per_problem
        ax.errorbar(
            tokens,
            m.accuracy,
            yerr=[[m.accuracy - m.ci95_low], [m.ci95_high - m.accuracy]],
            fmt="o",
            capsize=3,
            label=name,
        )
    ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("tokens per problem (prompt + completion)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=8)
    png = out / "compare.png"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    rows = [compare_row(n, m) for n, m in named]
    links = [f"- [{n}]({n.replace(':', '_')}/report.md)" for n, _ in named]
    md = [
        f"# {title}",
        "",
        _md_table(COMPARE_HEADER, rows),
        "",
        f"![accuracy vs tokens]({png.name})",
        "",
        *links,
        "",
    ]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    body = f"<h1>{html.escape(title)}</h1>{_html_table(COMPARE_HEADER, rows)}<p><img src='{png.name}'></p>"
    (out / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><style>{_CSS}</style>{body}", encoding="utf-8"
    )
    return out / "report.md"
