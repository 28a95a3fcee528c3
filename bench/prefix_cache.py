"""Prefix-cache hit rate (vLLM's own counters) for our prompt layout against agent-specific-first.

    python bench/prefix_cache.py --problems 16 --json

The same 3-agent full debate (2 rounds, solver card) is sent to the in-process engine twice, each time
on a fresh engine so nothing is cached in advance:

- ``shared_first`` — agentgraph's layout: role system prompt, problem, peers, instruction; the three
  agents of a problem (and every problem's system prompt) share a prefix;
- ``agent_first`` — the same text with an agent-specific line first (``You are agent a1 …``), as
  frameworks do that open each prompt with the agent's persona or id.

With ``--json`` the last line is one JSON object: per layout ``hit_rate`` (hits ÷ queried prompt
tokens, from ``vllm:prefix_cache_hits`` / ``vllm:prefix_cache_queries``), ``prompt_tokens`` and
``wall_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, GenerationRequest
from agentgraph.eval.datasets import arith
from agentgraph.roles.book import RoleBook
from agentgraph.roles.prompts import PeerView, build_messages

AGENTS = 3


def layout(name: str, agent: int, msgs: tuple[ag.ChatMessage, ...]) -> tuple[ag.ChatMessage, ...]:
    if name == "shared_first":
        return msgs
    system, user = msgs
    persona = f"You are agent a{agent} of {AGENTS}, identifier {agent * 7919 % 1000:03d}."
    return (ag.ChatMessage(role="system", content=f"{persona}\n{system.content}"), user)


async def debate(engine: VLLM, name: str, problems: list[str], max_tokens: int) -> None:
    role = RoleBook.default()["solver"]
    s = role.sampling.model_copy(update={"max_tokens": max_tokens})

    async def ask(agent: int, msgs: tuple[ag.ChatMessage, ...]) -> str:
        c = await engine.generate(GenerationRequest(messages=layout(name, agent, msgs), sampling=s))
        return c.text

    async def session(problem: str) -> None:
        texts = await asyncio.gather(*(ask(i, build_messages(role, problem, [])) for i in range(AGENTS)))
        await asyncio.gather(
            *(
                ask(
                    i,
                    build_messages(
                        role,
                        problem,
                        [
                            PeerView(f"t{j}", f"a{j}", "solver", 0, texts[j], "own" if i == j else "temporal")
                            for j in range(AGENTS)
                        ],
                    ),
                )
                for i in range(AGENTS)
            )
        )

    await asyncio.gather(*(session(p) for p in problems))


async def measure(name: str, problems: list[str], args: argparse.Namespace) -> dict[str, Any]:
    extra = {"block_size": args.block_size} if args.block_size else {}
    async with VLLM(seed=args.seed, kv_cache_gib=2, engine_kwargs=extra) as engine:
        before = VLLM.engine_counters()
        start = time.perf_counter()
        await debate(engine, name, problems, args.max_tokens)
        wall = time.perf_counter() - start
        after = VLLM.engine_counters()
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    queries = d.get("vllm:prefix_cache_queries", 0.0)
    return {
        "hit_rate": round(d.get("vllm:prefix_cache_hits", 0.0) / queries, 4) if queries else None,
        "prompt_tokens": int(d.get("vllm:prompt_tokens", 0.0)),
        "cache_queries": int(queries),
        "cache_hits": int(d.get("vllm:prefix_cache_hits", 0.0)),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--block-size",
        type=int,
        default=0,
        help="KV block size (0: VLLM()'s default, 32 on CPU; vLLM's own CPU default is 128)",
    )
    ap.add_argument("--layout", help=argparse.SUPPRESS)  # internal: one layout, in its own process
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    problems = [p.question for p in arith("+-", 2, args.problems, seed=args.seed)]
    if args.layout:
        print(json.dumps(asyncio.run(measure(args.layout, problems, args))))
        return {}
    summary: dict[str, Any] = {}
    for name in ("shared_first", "agent_first"):  # a fresh process each: fresh engine, fresh counters
        cmd = [sys.executable, __file__, "--layout", name, "--problems", str(args.problems)]
        cmd += [
            "--max-tokens",
            str(args.max_tokens),
            "--seed",
            str(args.seed),
            "--block-size",
            str(args.block_size),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        summary[name] = json.loads(out.strip().splitlines()[-1])
        if not args.json:
            print(name, summary[name])
    summary.update(
        problems=args.problems, max_tokens=args.max_tokens, seed=args.seed, block_size=args.block_size
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
