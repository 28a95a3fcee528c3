"""Reports: ``report.md`` + ``report.html`` per run, and a side-by-side comparison.

A run report has the metrics table, the topology picture, a per-round accuracy plot, where the
budget went (per problem: tokens, the cascade stage that decided, and whether the compute beyond
one sample helped, hurt or changed nothing) and excerpts of the problems on which the agents
disagreed. A comparison has every team's row, each team beside self-consistency at its measured
token budget (when matched), and the Pareto plot: accuracy against tokens per problem for every
shape, the self-consistency curve, and the frontier of what no other point beats on both axes.
Plots are matplotlib PNGs beside the report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from agentgraph.core.plotting import pyplot
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.budget import MatchedRow, effect, first_answer
from agentgraph.eval.metrics import Metrics
from agentgraph.graph.topology import Topology


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
        *([("grader scores parsed", f"{m.scores_parsed} of {m.score_turns}")] if m.score_turns else []),
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


def budget_rows(results: Sequence[SessionResult], limit: int = 100) -> list[tuple[str, ...]]:
    """Per problem: tokens, the deciding stage, one sample's answer, the team's, and the effect."""
    rows: list[tuple[str, ...]] = []
    for r in results[:limit]:
        stage = "–" if r.decision.stage is None else str(r.decision.stage)
        rows.append(
            (
                r.session,
                str(r.usage.total_tokens),
                stage,
                str(first_answer(r)),
                str(r.answer),
                effect(r) if r.gold is not None else "–",
            )
        )
    return rows


def effects_line(m: Metrics) -> str:
    e = m.effects
    stages = ", ".join(f"stage {k}: {v}" for k, v in m.stages.items())
    line = (
        f"beyond one sample the compute helped on {e.get('helped', 0)}, hurt on {e.get('hurt', 0)}, "
        f"changed a wrong answer to another wrong one on {e.get('changed', 0)} and left "
        f"{e.get('same', 0)} unchanged"
    )
    return line + (f"; decided at {stages}" if stages else "")


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
    models = [
        (m, pct(v), f"{metrics.tokens_by_model.get(m, 0.0):.0f}")
        for m, v in metrics.per_model_accuracy.items()
    ]
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
        *(
            [
                "## By model (last-round answers; tokens per problem)",
                "",
                _md_table(("model", "accuracy", "tokens"), models),
                "",
            ]
            if len(models) > 1
            else []
        ),
        f"![topology]({topo_png.name})",
        f"![rounds]({rounds_png.name})",
        "",
        "## Where the budget went",
        "",
        f"Tokens per problem p50 {metrics.tokens_p50:.0f}, p95 {metrics.tokens_p95:.0f}; "
        f"{effects_line(metrics)}.",
        "",
        _md_table(("problem", "tokens", "stage", "one sample", "team", "effect"), budget_rows(results)),
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


MATCHED_HEADER = (
    "team",
    "tokens/problem",
    "accuracy",
    "sc:N at same tokens",
    "sc accuracy",
    "sc maj@N",
    "team − sc (95% CI)",
    "verdict",
)


def verdict(row: MatchedRow) -> str:
    lo, hi = row.difference_ci95
    if lo > 0:
        return "better than voting"
    if hi < 0:
        return "worse than voting"
    return "no difference shown"


def matched_cells(row: MatchedRow) -> list[str]:
    lo, hi = row.difference_ci95
    short = " (pool too small)" if row.pool_short else ""
    return [
        row.team,
        f"{row.team_tokens_per_problem:.0f}",
        pct(row.team_accuracy),
        f"sc:{row.sc_n} ({row.sc_tokens_per_problem:.0f} tok){short}",
        f"{pct(row.sc_accuracy)} ({pct(row.sc_ci95[0])}–{pct(row.sc_ci95[1])})",
        pct(row.sc_expected),
        f"{100 * row.difference:+.1f} pts ({100 * lo:+.1f} to {100 * hi:+.1f})",
        verdict(row),
    ]


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (fewer tokens, higher accuracy),
    in order of tokens."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -1.0
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(
    out: Path,
    title: str,
    named: Sequence[tuple[str, Metrics]],
    curves: dict[int, tuple[float, float, float, float]],
    match_on: str = "total",
) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    points: list[tuple[float, float]] = []
    for name, m in named:
        tokens = m.prompt_tokens_per_problem + m.completion_tokens_per_problem
        if match_on == "completion":
            tokens = m.completion_tokens_per_problem
        ax.errorbar(
            tokens,
            m.accuracy,
            yerr=[[m.accuracy - m.ci95_low], [m.ci95_high - m.accuracy]],
            fmt="o",
            capsize=3,
            label=name,
        )
        points.append((tokens, m.accuracy))
    if curves:
        ks = sorted(curves)
        xs = [curves[k][0] for k in ks]
        ax.plot(xs, [curves[k][3] for k in ks], "k.-", lw=1, label="self-consistency (first k samples)")
        ax.plot(xs, [curves[k][1] for k in ks], ":", color="grey", lw=1, label="maj@k (unbiased)")
        points += [(curves[k][0], curves[k][3]) for k in ks]
    front = pareto(points)
    ax.plot(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        "o-",
        color="#e76f51",
        alpha=0.5,
        lw=4,
        markersize=14,
        markerfacecolor="none",
        zorder=0,
        label="Pareto frontier",
    )
    ax.set_xscale("log")
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(f"tokens per problem ({'prompt + completion' if match_on == 'total' else 'completion'})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=8)
    png = out / "compare.png"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png


def write_compare_report(
    out: Path,
    title: str,
    named: Sequence[tuple[str, Metrics]],
    *,
    matched: Sequence[MatchedRow] = (),
    curves: dict[int, tuple[float, float, float, float]] | None = None,
    match_on: str = "total",
) -> Path:
    png = plot_pareto(out, title, named, curves or {}, match_on)
    rows = [compare_row(n, m) for n, m in named]
    links = [f"- [{n}]({n.replace(':', '_')}/report.md)" for n, _ in named]
    budget = [
        f"- **{n}**: tokens p50 {m.tokens_p50:.0f} / p95 {m.tokens_p95:.0f}; {effects_line(m)}"
        for n, m in named
    ]
    md = [f"# {title}", "", _md_table(COMPARE_HEADER, rows), ""]
    body = f"<h1>{html.escape(title)}</h1>{_html_table(COMPARE_HEADER, rows)}"
    if matched:
        mrows = [matched_cells(r) for r in matched]
        curve = [
            (str(k), f"{t:.0f}", pct(acc), pct(maj), pct(pas))
            for k, (t, maj, pas, acc) in sorted((curves or {}).items())
        ]
        intro = (
            f"Each team beside self-consistency (independent samples, plurality vote) at the team's "
            f"measured mean {match_on} tokens per problem, on the same {matched[0].n} problems; the "
            "interval is Newcombe's for paired proportions. sc accuracy votes the pool's first N "
            "samples (the paired run); sc maj@N is the unbiased expectation over all N-subsets of the "
            "pool (what voting N samples gets on average)."
        )
        md += [
            "## Is the team better than voting at the same cost?",
            "",
            intro,
            "",
            _md_table(MATCHED_HEADER, mrows),
            "",
            "### Self-consistency pool",
            "",
            _md_table(("k", "tokens/problem", "first k voted", "maj@k", "pass@k"), curve),
            "",
        ]
        body += (
            f"<h2>Is the team better than voting at the same cost?</h2><p>{html.escape(intro)}</p>"
            f"{_html_table(MATCHED_HEADER, mrows)}"
        )
    md += [f"![accuracy vs tokens]({png.name})", "", "## Where the budget went", "", *budget, "", *links, ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    body += f"<p><img src='{png.name}'></p>"
    (out / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><style>{_CSS}</style>{body}", encoding="utf-8"
    )
    return out / "report.md"
