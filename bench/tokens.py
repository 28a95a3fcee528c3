"""Tokens per problem by topology and inter-round policy, with accuracy beside each.

    python bench/tokens.py --json

Part 1 — the same generated arithmetic problems (``arith:ops=+-,digits=2``, fixed seed), 2 rounds,
``--max-tokens`` per turn, one team after another on one engine:

- ``full:3`` — the classic debate (every agent reads every round-0 answer), majority vote;
- ``full:3+summarize`` — the same, but a summarizer's one message replaces round r's messages;
- ``chain:3`` — a0 → a1 → a2 inside a round, each with its own memory; the tail decides;
- ``tree:2x1`` — two solvers report to a manager, who decides;
- ``pruned:3`` — ``full:3`` pruned AgentPrune-style to a ring: each agent keeps its own previous
  answer and one peer's (edge probability 0.9 kept, 0.1 dropped, threshold 0.5).

Part 2 — does summarizing keep round 1's prompts bounded? ``full:N`` for N in ``--agents``, inter-round
``full`` vs ``summarize``, on ``--bound-problems`` problems: the mean and the largest prompt (tokens)
of the agents' round-1 turns. Under ``full`` it grows with N (N peer messages); under ``summarize``
it must not (one summary whose length is capped by the summarizer's ``max_tokens``).

``--backend scripted`` runs both parts on scripted agents (for tests; accuracy is then meaningless).
With ``--json`` the last line is one JSON object: ``rows`` (per team: ``tokens_per_problem``,
``prompt_tokens_per_problem``, ``completion_tokens_per_problem``, ``accuracy``, ``ci95``, ``n``,
``wall_s``), ``bound`` (per policy and N: ``round1_prompt_mean``, ``round1_prompt_max``) and
``summarize_bounded`` (whether round 1's largest prompt under ``summarize`` grew by less than one
summary's token cap from the smallest N to the largest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, Backend, Scripted, ScriptedCall
from agentgraph.core.errors import ConfigError
from agentgraph.eval.datasets import arith
from agentgraph.eval.metrics import compute_metrics
from agentgraph.graph.generators import chain, full, pruned, tree
from agentgraph.roles.book import RoleBook


def ring_weights(n: int) -> dict[tuple[str, str, str], float]:
    """Keep a_i's own memory and a_{i-1} → a_i; drop the other temporal edges of ``full(n)``."""
    keep = {(f"a{i}", f"a{i}") for i in range(n)} | {(f"a{(i - 1) % n}", f"a{i}") for i in range(n)}
    return {
        (f"a{i}", f"a{j}", "temporal"): 0.9 if (f"a{i}", f"a{j}") in keep else 0.1
        for i in range(n)
        for j in range(n)
    }


def teams(max_tokens: int, rounds: int) -> list[tuple[str, ag.Team]]:
    s = ag.SamplingOverrides(max_tokens=max_tokens)
    return [
        ("full:3", ag.Team(full(3), rounds=rounds, sampling=s)),
        ("full:3+summarize", ag.Team(full(3), rounds=rounds, inter_round="summarize", sampling=s)),
        ("chain:3", ag.Team(chain(3), rounds=rounds, decision="chain_tail", sampling=s)),
        ("tree:2x1", ag.Team(tree(2, 1), rounds=rounds, decision="tree_root", sampling=s)),
        ("pruned:3", ag.Team(pruned(full(3), ring_weights(3)), rounds=rounds, sampling=s)),
    ]


def scripted_agent(call: ScriptedCall) -> str:
    """Stands in for the model in tests: a fixed-length answer, right 60% of the time."""
    m = re.search(r"What is (-?\d+) ([+-]) (-?\d+)\?", call.problem)
    right = 0 if m is None else int(m[1]) + int(m[3]) if m[2] == "+" else int(m[1]) - int(m[3])
    words = " ".join(["step"] * 20)
    return f"{words} so the answer is \\boxed{{{right if call.rng.random() < 0.6 else right + 1}}}"


def make_backend(args: argparse.Namespace) -> Backend:
    if args.backend == "scripted":
        return Scripted(default=scripted_agent, seed=args.seed)
    if args.backend == "vllm":
        return VLLM(seed=args.seed)
    raise ConfigError("backend", f"{args.backend!r} is not vllm or scripted", "use --backend vllm|scripted")


async def part1(args: argparse.Namespace, backend: Backend) -> list[dict[str, Any]]:
    problems = arith("+-", 2, args.problems, seed=args.seed)
    rows = []
    for name, team in teams(args.max_tokens, args.rounds):
        t = time.perf_counter()
        results = await ag.solve_many(
            team,
            [p.question for p in problems],
            backend,
            golds=[p.answer for p in problems],
            session_ids=[f"{name}-{p.id}" for p in problems],
            progress=args.progress,
        )
        wall = time.perf_counter() - t
        m = compute_metrics(name, results, wall)
        row = {
            "team": name,
            "agents": len(team.topology),
            "turns_per_problem": sum(len(r.turns) for r in results) / len(results),
            "tokens_per_problem": m.prompt_tokens_per_problem + m.completion_tokens_per_problem,
            "prompt_tokens_per_problem": m.prompt_tokens_per_problem,
            "completion_tokens_per_problem": m.completion_tokens_per_problem,
            "accuracy": m.accuracy,
            "ci95": [round(m.ci95_low, 3), round(m.ci95_high, 3)],
            "n": m.n,
            "wall_s": round(wall, 1),
        }
        rows.append(row)
        print(
            f"{name:>18}: {row['tokens_per_problem']:7.0f} tokens/problem "
            f"({m.prompt_tokens_per_problem:.0f} prompt + {m.completion_tokens_per_problem:.0f} completion), "
            f"accuracy {m.accuracy:.3f} [{m.ci95_low:.2f}, {m.ci95_high:.2f}], {wall:.0f} s",
            file=sys.stderr,
        )
    return rows


async def part2(args: argparse.Namespace, backend: Backend) -> tuple[list[dict[str, Any]], bool, int]:
    problems = [p.question for p in arith("+-", 2, args.bound_problems, seed=args.seed + 1)]
    s = ag.SamplingOverrides(max_tokens=args.max_tokens)
    rows = []
    for policy in ("full", "summarize"):
        for n in args.agents:
            team = ag.Team(full(n), rounds=2, inter_round=policy, sampling=s)
            results = await ag.solve_many(
                team, problems, backend, session_ids=[f"bound-{policy}-{n}-{i}" for i in range(len(problems))]
            )
            lengths = [
                t.prompt_tokens
                for r in results
                for t in r.turns
                if t.kind == "agent" and t.round == 1 and t.ok
            ]
            if not lengths:
                raise RuntimeError(f"no round-1 turn answered for full:{n} with {policy}")
            row = {
                "policy": policy,
                "agents": n,
                "round1_prompt_mean": round(statistics.mean(lengths), 1),
                "round1_prompt_max": max(lengths),
            }
            rows.append(row)
            print(
                f"{policy:>10}, {n} agents: round-1 prompt mean {row['round1_prompt_mean']:.0f}, "
                f"max {row['round1_prompt_max']} tokens",
                file=sys.stderr,
            )
    # the summary is capped at the team's max_tokens (the team's override wins over the card's)
    cap = args.max_tokens
    summ = [r for r in rows if r["policy"] == "summarize"]
    growth = max(r["round1_prompt_max"] for r in summ) - min(r["round1_prompt_max"] for r in summ)
    return rows, growth < cap, cap


def plot(bound: list[dict[str, Any]], path: Path) -> None:
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for policy in ("full", "summarize"):
        pts = [(r["agents"], r["round1_prompt_max"]) for r in bound if r["policy"] == policy]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"inter-round {policy}")
    ax.set_xlabel("agents (full:N)")
    ax.set_ylabel("largest round-1 prompt (tokens)")
    ax.set_title("Round-1 prompt length vs team size")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    RoleBook.default()  # fail on a broken card before the engine starts
    backend = make_backend(args)
    async with backend:
        rows = await part1(args, backend) if args.problems else []
        bound, bounded, cap = await part2(args, backend)
    if args.plot:
        plot(bound, Path(args.plot))
    return {
        "backend": args.backend,
        "problems": args.problems,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "rows": rows,
        "bound": bound,
        "summary_cap_tokens": cap,
        "summarize_bounded": bounded,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="vllm", help="vllm (embedded model) | scripted")
    p.add_argument("--problems", type=int, default=32, help="problems in part 1 (0 skips it)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--agents", default="2,4,8", help="team sizes for part 2")
    p.add_argument("--bound-problems", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write part 2 as a PNG here")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        a.agents = [int(x) for x in a.agents.split(",") if x.strip()]
    except ValueError:
        p.error("--agents: use comma-separated integers, e.g. 2,4,8")
    if len(a.agents) < 2 or min(a.agents) < 2:
        p.error("--agents: give at least two team sizes, each ≥ 2")
    if a.problems < 0 or a.bound_problems < 1 or a.max_tokens < 1:
        p.error("--problems ≥ 0, --bound-problems ≥ 1 and --max-tokens ≥ 1")
    return a


if __name__ == "__main__":
    args = parse()
    try:
        out = asyncio.run(main(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.json:
        print(json.dumps(out))
