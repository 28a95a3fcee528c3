"""A multi-agent debate (Du et al.) on the embedded model, served in-process by vLLM.

    python examples/debate.py                       # 3 agents, 2 rounds, the default problem
    python examples/debate.py --agents 4 --rounds 3 --inter-round summarize --json
    python examples/debate.py --problem "What is 17 * 3?" --gold 51 --model Qwen/Qwen2.5-1.5B-Instruct

Prints the team answer, every agent's answer per round and the token usage; with ``--json`` the
last line is one JSON object (``answer``, ``correct``, ``answers_by_round``, ``prompt_tokens``,
``completion_tokens``, ``wall_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import agentgraph as ag
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.graph.generators import full

DEFAULT_PROBLEM = "Tom has 3 apples and buys 4 more. Then he eats 2. How many apples does he have now?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default=DEFAULT_PROBLEM)
    p.add_argument("--gold", default=None, help="the right answer, if known (default problem: 5)")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--inter-round", default="full", help="full | partial[:K] | summarize")
    p.add_argument("--decision", default="majority")
    p.add_argument("--max-tokens", type=int, default=160)
    p.add_argument("--model", default=None, help="HF id or local path (default: the embedded SmolLM2-135M)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transcript", default=None, help="write the JSONL transcript here")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> ag.SessionResult:
    team = ag.Team(
        full(args.agents),
        rounds=args.rounds,
        inter_round=args.inter_round,
        decision=args.decision,
        sampling=SamplingOverrides(max_tokens=args.max_tokens),
    )
    gold = args.gold if args.gold is not None else ("5" if args.problem == DEFAULT_PROBLEM else None)
    async with ag.backends.VLLM(args.model, seed=args.seed) as engine:
        if args.transcript:
            with ag.TranscriptWriter(args.transcript) as w:
                return await ag.solve(team, args.problem, engine, gold=gold, writer=w)
        return await ag.solve(team, args.problem, engine, gold=gold)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except ag.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_round = {r: result.answers(r) for r in range(result.rounds_run)}
    print(f"\nproblem: {result.problem}")
    for r, answers in by_round.items():
        print(f"round {r}: " + ", ".join(f"{a}={v}" for a, v in answers.items()))
    print(
        f"team answer ({result.decision.method}): {result.answer}"
        + (f"  [gold {result.gold}: {'right' if result.correct else 'wrong'}]" if result.gold else "")
    )
    u = result.usage
    print(
        f"tokens: {u.prompt_tokens} prompt + {u.completion_tokens} completion in {u.requests} requests, "
        f"{result.wall_s:.1f} s"
    )
    for agent, au in result.usage_by_agent.items():
        print(f"  {agent}: {au.prompt_tokens} prompt, {au.completion_tokens} completion")
    if args.json:
        print(
            json.dumps(
                {
                    "answer": result.answer,
                    "correct": result.correct,
                    "answers_by_round": by_round,
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "requests": u.requests,
                    "wall_s": round(result.wall_s, 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
