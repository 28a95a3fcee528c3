"""Test-time-scaling shapes against self-consistency at the same tokens, on the embedded model.

    python bench/tts.py --json

Every shape is a team on the same scheduler, run on the same generated problems
(``arith:ops=+,digits=2``) with a short-answer card (``bench/cards/short.yaml``: the result only,
in ``\\boxed{}``, at most 16 tokens): single greedy (temperature 0), single sampled, ``sc:5``,
``bon:4`` (graders: the ``grader`` card), ``full:3`` (2-round debate), ``beam:2x2`` and cascades.
Then :func:`agentgraph.compare` with ``budget="matched"`` runs the self-consistency sample pool and
sets every shape beside ``sc:N`` at its measured mean tokens per problem (paired Newcombe interval).
``--backend scripted`` runs scripted agents of known accuracy (for tests).

The run directory (``--out``, default ``runs/tts-<time>``) holds every shape's transcripts and
report, ``report.md`` with the matched-budget table and ``compare.png`` (the Pareto plot). With
``--json`` the last line is one JSON object: ``rows`` (per shape: ``shape``, ``accuracy``,
``ci95``, ``tokens_per_problem``, ``wall_s``, ``sc_n``, ``sc_accuracy``, ``sc_expected``
(maj@N), ``difference``, ``difference_ci95``, ``stages``, ``effects``), ``sc_curve``,
``cascade_target`` (the best fixed shape, the cascade's accuracy and token share against it, and
whether the target — within the best shape's interval at ≤ 60% of its tokens — was met) and
``report``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, Backend, Scripted, ScriptedCall
from agentgraph.core.errors import ConfigError

CARD = Path(__file__).resolve().parent / "cards" / "short.yaml"
SHAPES = "single,sc:5,bon:4,full:3,beam:2x2,cascade:sc:2+sc:6,cascade:sc:3+full:3"
_ARITH = re.compile(r"What is (-?\d+) \+ (-?\d+)\?")


def scripted_short(call: ScriptedCall) -> str:
    """Right 45% of the time; wrong answers spread over four values (like a small model)."""
    m = _ARITH.search(call.problem)
    v = int(m.group(1)) + int(m.group(2)) if m else 0
    if call.role == "grader":
        return f"\\boxed{{{call.rng.randint(0, 10)}}}"
    if call.rng.random() < 0.45:
        return f"\\boxed{{{v}}}"
    return f"\\boxed{{{v + call.rng.choice([-10, -1, 1, 10])}}}"


def make_backend(name: str, seed: int) -> Backend:
    if name == "vllm":
        return VLLM(seed=seed, max_model_len=2048, kv_cache_gib=2)
    if name == "scripted":
        return Scripted(default=scripted_short, seed=seed)
    raise ConfigError("backend", f"{name!r} is not vllm or scripted", "use --backend vllm|scripted")


def tokens(m: ag.Metrics) -> float:
    return m.prompt_tokens_per_problem + m.completion_tokens_per_problem


async def main(args: argparse.Namespace) -> dict[str, Any]:
    problems = ag.load_dataset(f"arith:ops=+,digits=2,n={args.limit},seed={args.seed}")
    roles = ag.RoleBook.default().with_cards(CARD)
    settings: dict[str, Any] = {"roles": roles}
    teams = [
        (
            "single greedy",
            ag.shape(
                "single", role="short", rounds=1, sampling=ag.SamplingOverrides(temperature=0.0), **settings
            ),
        )
    ]
    for spec in args.shapes.split(","):
        name = "single sampled" if spec == "single" else spec
        teams.append(
            (
                name,
                ag.shape(
                    spec,
                    role="short",
                    rounds=1 if spec == "single" else 2,
                    min_agreement=args.min_agreement,
                    **settings,
                ),
            )
        )
    out = Path(args.out or f"runs/tts-{time.strftime('%Y%m%d-%H%M%S')}")
    async with make_backend(args.backend, args.seed) as backend:
        c = await ag.compare(
            teams,
            problems,
            backend,
            out,
            title=f"test-time scaling, arith:ops=+,digits=2, n={args.limit}",
            budget="matched",
            baseline=lambda n: ag.shape(f"sc:{n}", role="short", **settings),
            max_samples=args.max_samples,
        )
    matched = {r.team: r for r in c.matched}
    rows = []
    for name, m in c.metrics:
        r = matched[name]
        lo, hi = r.difference_ci95
        rows.append(
            {
                "shape": name,
                "accuracy": m.accuracy,
                "ci95": [m.ci95_low, m.ci95_high],
                "tokens_per_problem": tokens(m),
                "completion_tokens_per_problem": m.completion_tokens_per_problem,
                "wall_s": m.wall_s,
                "sc_n": r.sc_n,
                "sc_tokens_per_problem": r.sc_tokens_per_problem,
                "sc_accuracy": r.sc_accuracy,
                "sc_expected": r.sc_expected,
                "difference": r.difference,
                "difference_ci95": list(r.difference_ci95),
                "stages": m.stages,
                "effects": m.effects,
                "n": m.n,
            }
        )
        print(
            f"{name:>24}: accuracy {m.accuracy:.2f} [{m.ci95_low:.2f}, {m.ci95_high:.2f}]  "
            f"{tokens(m):7.0f} tok/problem  {m.wall_s:6.1f} s  vs sc:{r.sc_n} {r.sc_accuracy:.2f}: "
            f"{100 * r.difference:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]",
            file=sys.stderr,
        )
    fixed = [x for x in rows if not x["shape"].startswith("cascade")]
    best = max(fixed, key=lambda x: (x["accuracy"], -x["tokens_per_problem"]))
    targets = []
    for x in rows:
        if x["shape"].startswith("cascade"):
            share = x["tokens_per_problem"] / best["tokens_per_problem"]
            met = x["accuracy"] >= best["ci95"][0] and share <= 0.6
            targets.append(
                {
                    "cascade": x["shape"],
                    "best_fixed": best["shape"],
                    "accuracy": x["accuracy"],
                    "best_accuracy": best["accuracy"],
                    "best_ci95": best["ci95"],
                    "token_share": share,
                    "met": met,
                }
            )
    return {
        "backend": args.backend,
        "rows": rows,
        "sc_curve": c.sc_curve(),
        "cascade_target": targets,
        "report": str(c.report),
        "sc_pool_wall_s": c.pool_wall_s,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="vllm", help="vllm (embedded model) | scripted")
    p.add_argument(
        "--shapes", default=SHAPES, help="comma-separated shape specs (single greedy is always run)"
    )
    p.add_argument("--limit", type=int, default=60, help="problems")
    p.add_argument("--max-samples", type=int, default=48, help="most self-consistency samples per problem")
    p.add_argument("--min-agreement", type=float, default=1.0, help="cascades escalate below this agreement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    a = p.parse_args()
    try:
        result = asyncio.run(main(a))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if a.json:
        print(json.dumps(result))
