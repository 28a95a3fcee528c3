"""A team of two different models against each model alone and each model's self-consistency at the
team's tokens.

    python bench/mixed.py --json                                   # CPU: embedded SmolLM2 + tiny Qwen2
    python bench/mixed.py --model-a deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B \\
        --model-b Qwen/Qwen2.5-Math-1.5B-Instruct --dataset gsm8k --limit 200 --json   # GPU

Both models are in-process engines behind one :class:`~agentgraph.backends.Router` (on a GPU each
takes ``--gpu-share`` of its memory). Each model gets its own preset (by family). The mixed team is
``full:3`` debate, two rounds, majority vote, with agent ``a1`` on model B and the others on model A.
Rows: each model alone (one sample, greedy), the mixed team, and ``sc:N`` of each model with N set
so its tokens per problem match the mixed team's (model A through :func:`agentgraph.compare`'s
matched-budget pool, paired interval; model B as ``sc:N`` with N = team tokens / B's tokens per
sample). On CPU model B defaults to a tiny random-weight Qwen2 (the only second model this machine
has): its answers are noise, so the CPU rows show the machinery, not the benefit of mixing.
``--backend scripted`` uses scripted agents of known accuracy (70% and 50%, for tests).

With ``--json`` the last line is one JSON object: ``rows`` (``team``, ``models``, ``accuracy``,
``ci95``, ``tokens_per_problem``, and for the team ``sc`` — per model ``n``, ``accuracy``,
``tokens_per_problem``), ``tokens_by_model`` and ``per_model_accuracy`` of the team, ``report``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, Backend, Router, Scripted, ScriptedCall
from agentgraph.core.errors import ConfigError
from agentgraph.roles.presets import choose

CARD = Path(__file__).resolve().parent / "cards" / "short.yaml"
_ARITH = re.compile(r"What is (-?\d+) \+ (-?\d+)\?")


def scripted(p_right: float):  # type: ignore[no-untyped-def]
    def agent(call: ScriptedCall) -> str:
        m = _ARITH.search(call.problem)
        v = int(m.group(1)) + int(m.group(2)) if m else 0
        return f"\\boxed{{{v if call.rng.random() < p_right else v + call.rng.choice([-1, 1, 10])}}}"

    return agent


def backends(args: argparse.Namespace, a: str, b: str) -> Backend:
    if args.backend == "scripted":
        return Router(
            {a: Scripted(default=scripted(0.7), model=a), b: Scripted(default=scripted(0.5), model=b)}
        )
    if args.backend != "vllm":
        raise ConfigError("backend", f"{args.backend!r} is not vllm or scripted", "use vllm or scripted")

    def engine(model: str | None) -> VLLM:
        return VLLM(
            model, seed=args.seed, max_model_len=args.max_model_len, kv_cache_gib=1,
            gpu_memory_utilization=args.gpu_share,
        )  # fmt: skip

    return Router({a: engine(args.model_a), b: engine(args.model_b)})


def mixed_topology(b: str, role: str) -> ag.Topology:
    g = ag.full(3, role=role)
    g.graph["name"] = "full:3 mixed"
    g.nodes["a1"]["model"] = b
    return g


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "vllm" and args.model_b is None:
        from agentgraph.testing.tiny import tiny_model

        args.model_b = tiny_model(Path(tempfile.gettempdir()) / "agentgraph-bench", name="tiny-qwen2-mixed")
    a = Path(args.model_a).name if args.model_a else "smollm2"
    b = Path(args.model_b).name if args.model_b else "model-b"
    problems = ag.load_dataset(args.dataset, limit=args.limit)
    roles = ag.RoleBook.default().with_cards(CARD) if args.role == "short" else ag.RoleBook.default()
    presets = {a: choose("auto", args.model_a), b: choose("auto", args.model_b)}
    common: dict[str, Any] = {"roles": roles, "presets": presets, "preset": presets[a]}

    def on(model: str, spec: str, **kw: Any) -> ag.Team:
        return ag.shape(spec, role=args.role, model=model, **common, **kw)

    greedy = ag.SamplingOverrides(temperature=0.0)
    teams = [
        (f"single {a}", on(a, "single", rounds=1, sampling=greedy)),
        (f"single {b}", on(b, "single", rounds=1, sampling=greedy)),
        ("mixed", ag.Team(mixed_topology(b, args.role), rounds=2, model=a, **common)),
    ]
    out = Path(args.out or f"runs/mixed-{time.strftime('%Y%m%d-%H%M%S')}")
    async with backends(args, a, b) as backend:
        c = await ag.compare(
            teams, problems, backend, out, title=f"mixed team {a} + {b}, {args.dataset}", budget="matched",
            baseline=lambda n: on(a, f"sc:{n}"), max_samples=args.max_samples,
        )  # fmt: skip
        metrics = dict(c.metrics)
        mixed, single_b = metrics["mixed"], metrics[f"single {b}"]
        n_b = max(1, round(tokens(mixed) / max(1.0, tokens(single_b))))
        sc_b, _ = await ag.evaluate(on(b, f"sc:{n_b}"), problems, backend, out / f"sc-{b}", progress=False)
    matched = {r.team: r for r in c.matched}
    rows: list[dict[str, Any]] = []
    for name, m in c.metrics:
        row = {
            "team": name,
            "models": [a, b] if name == "mixed" else [name.removeprefix("single ")],
            "accuracy": m.accuracy,
            "ci95": [m.ci95_low, m.ci95_high],
            "tokens_per_problem": tokens(m),
        }
        if name == "mixed":
            r = matched[name]
            row["sc"] = {
                a: {"n": r.sc_n, "accuracy": r.sc_accuracy, "tokens_per_problem": r.sc_tokens_per_problem,
                    "difference": r.difference, "difference_ci95": list(r.difference_ci95)},
                b: {"n": n_b, "accuracy": sc_b.accuracy, "tokens_per_problem": tokens(sc_b)},
            }  # fmt: skip
        rows.append(row)
        print(f"{name:>28}: accuracy {m.accuracy:.2f} [{m.ci95_low:.2f}, {m.ci95_high:.2f}]  "
              f"{tokens(m):7.0f} tok/problem", file=sys.stderr)  # fmt: skip
    return {
        "backend": args.backend,
        "dataset": args.dataset,
        "rows": rows,
        "tokens_by_model": mixed.tokens_by_model,
        "per_model_accuracy": mixed.per_model_accuracy,
        "report": str(c.report),
    }


def tokens(m: ag.Metrics) -> float:
    return m.prompt_tokens_per_problem + m.completion_tokens_per_problem


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="vllm", help="vllm | scripted")
    p.add_argument("--model-a", default=None, help="model A (default: the embedded SmolLM2)")
    p.add_argument("--model-b", default=None, help="model B (default on CPU: a tiny random-weight Qwen2)")
    p.add_argument("--dataset", default="arith:ops=+,digits=2,n=40,seed=0", help="a dataset spec")
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    p.add_argument("--role", default="short", help="the agents' card (short: the result only, in \\boxed{})")
    p.add_argument("--max-samples", type=int, default=16, help="most self-consistency samples per problem")
    p.add_argument("--max-model-len", type=int, default=1024, help="context of each engine")
    p.add_argument("--gpu-share", type=float, default=0.4, help="GPU memory share of each engine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    ns = p.parse_args()
    try:
        result = asyncio.run(main(ns))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if ns.json:
        print(json.dumps(result))
