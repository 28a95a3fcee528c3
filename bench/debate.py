"""A 3-agent full debate, 2 rounds: agentgraph against the engine floor and the anchors' patterns.

    python bench/debate.py --problems 64 --repeats 3 --json

Workload: generated arithmetic (``arith:ops=+-,digits=2``), fixed seed, ``full(3)``, 2 rounds, the
solver card, ``--max-tokens`` new tokens per turn, the embedded model. Ways, interleaved (the order
rotates every repeat), each measured as generated tokens per second of wall time:

- ``floor`` — the engine alone (vLLM ``AsyncLLM``, no scheduler): round 0's prompts as one batch, then
  round 1's (built from round 0's answers with the same prompt layout) as one batch;
- ``agentgraph`` — ``Team.solve_many`` on the in-process engine;
- ``sequential`` — one request at a time over a ``vllm serve`` server (the debate reference code);
- ``swarm`` — 4 sessions in flight, agents awaited one after another inside a session, same server
  (how GPTSwarm and AgentPrune evaluate);
- ``agentgraph_server`` — ``Team.solve_many`` over the same server (transport vs scheduling).

With ``--json`` the last line is one JSON object with ``ratio_to_floor`` (floor tokens/s ÷ agentgraph
tokens/s), ``speedup_vs_sequential``, ``speedup_vs_swarm`` (agentgraph's), ``floor_speedup_vs_sequential``,
``floor_speedup_vs_swarm``, and per-way medians of tokens/s, wall seconds and generated tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, OpenAI
from agentgraph.eval.datasets import arith
from agentgraph.graph.generators import full
from agentgraph.roles.book import RoleBook
from agentgraph.roles.prompts import PeerView, build_messages
from tests.servers import free_port, start_server, stop, wait_healthy

AGENTS, ROUNDS = 3, 2


def settings(args: argparse.Namespace) -> tuple[ag.Team, list[str], Any]:
    team = ag.Team(full(AGENTS), rounds=ROUNDS, sampling=ag.SamplingOverrides(max_tokens=args.max_tokens))
    problems = [p.question for p in arith("+-", 2, args.problems, seed=args.seed)]
    role = RoleBook.default()["solver"]
    return team, problems, role


def sampling(role: Any, args: argparse.Namespace) -> ag.Sampling:
    return role.sampling.model_copy(update={"max_tokens": args.max_tokens})


def round1_messages(role: Any, problem: str, texts: list[str]) -> list[tuple[ag.ChatMessage, ...]]:
    """What each agent reads in round 1 of a full debate: every agent's round-0 answer (its own too)."""
    out = []
    for i in range(AGENTS):
        peers = [
            PeerView(f"t{j}", f"a{j}", "solver", 0, texts[j], "own" if j == i else "temporal")
            for j in range(AGENTS)
        ]
        out.append(build_messages(role, problem, peers))
    return out


async def floor(engine: VLLM, role: Any, problems: list[str], args: argparse.Namespace) -> tuple[float, int]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    s = sampling(role, args)
    params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
    counter = iter(range(10**9))

    async def one(msgs: tuple[ag.ChatMessage, ...]) -> tuple[str, int]:
        ids = engine.prompt_ids(ag.backends.GenerationRequest(messages=msgs))
        final = None
        async for out in engine.engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, f"floor-{next(counter)}"
        ):
            final = out
        assert final is not None
        return final.outputs[0].text, len(final.outputs[0].token_ids)

    start = time.perf_counter()
    r0 = await asyncio.gather(*(one(build_messages(role, p, [])) for p in problems for _ in range(AGENTS)))
    msgs1 = [
        m
        for k, p in enumerate(problems)
        for m in round1_messages(role, p, [t for t, _ in r0[k * AGENTS : (k + 1) * AGENTS]])
    ]
    r1 = await asyncio.gather(*(one(m) for m in msgs1))
    return time.perf_counter() - start, sum(n for _, n in r0) + sum(n for _, n in r1)


async def team_way(team: ag.Team, backend: Any, problems: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    results = await ag.solve_many(team, problems, backend)
    wall = time.perf_counter() - start
    assert all(r.errors == 0 for r in results)
    return wall, sum(r.usage.completion_tokens for r in results)


async def anchor_way(
    url: str, role: Any, problems: list[str], args: argparse.Namespace, *, sessions_in_flight: int
) -> tuple[float, int]:
    """The anchors' loops: inside a session, agents one after another; ``sessions_in_flight`` sessions."""
    import httpx

    s = sampling(role, args)
    sem = asyncio.Semaphore(sessions_in_flight)
    tokens = 0

    async def ask(client: httpx.AsyncClient, msgs: tuple[ag.ChatMessage, ...]) -> str:
        nonlocal tokens
        body = {
            "model": "smollm2",
            "messages": [m.model_dump() for m in msgs],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        r = await client.post(f"{url}/v1/chat/completions", json=body)
        r.raise_for_status()
        data = r.json()
        tokens += int(data["usage"]["completion_tokens"])
        return str(data["choices"][0]["message"]["content"])

    async def session(client: httpx.AsyncClient, problem: str) -> None:
        async with sem:
            texts = [await ask(client, build_messages(role, problem, [])) for _ in range(AGENTS)]
            for msgs in round1_messages(role, problem, texts):
                await ask(client, msgs)

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(session(client, p) for p in problems))
    return time.perf_counter() - start, tokens


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    team, problems, role = settings(args)
    ways = ["floor", "agentgraph", "sequential", "swarm", "agentgraph_server"]
    if args.skip_server:
        ways = ["floor", "agentgraph"]
    runs: dict[str, list[tuple[float, int]]] = {w: [] for w in ways}
    log = Path(tempfile.mkdtemp(prefix="bench-debate-")) / "server.log"
    proc = None
    url = ""
    if not args.skip_server:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(port, log)
    try:
        async with contextlib.AsyncExitStack() as stack, VLLM(seed=args.seed, kv_cache_gib=2) as engine:
            if proc is not None:
                wait_healthy(url, proc, log, time.monotonic() + 600)
            server = OpenAI([f"{url}/v1"], model="smollm2") if proc is not None else None
            if server is not None:
                await stack.enter_async_context(server)
            warm = problems[: min(4, len(problems))]  # first requests pay one-off costs: not counted
            await team_way(team, engine, warm)
            if server is not None:
                await team_way(team, server, warm)
            for rep in range(args.repeats):
                order = ways[rep % len(ways) :] + ways[: rep % len(ways)]
                for way in order:
                    if way == "floor":
                        res = await floor(engine, role, problems, args)
                    elif way == "agentgraph":
                        res = await team_way(team, engine, problems)
                    elif way == "sequential":
                        res = await anchor_way(url, role, problems, args, sessions_in_flight=1)
                    elif way == "swarm":
                        res = await anchor_way(url, role, problems, args, sessions_in_flight=4)
                    else:
                        assert server is not None
                        res = await team_way(team, server, problems)
                    runs[way].append(res)
                    rate = res[1] / res[0]
                    print(  # progress on stderr, so --json's last stdout line stays the summary
                        f"repeat {rep} {way:>18}: {res[1]:6d} tokens, {res[0]:7.1f} s, {rate:6.1f} tok/s",
                        file=sys.stderr,
                    )
    finally:
        if proc is not None:
            stop(proc)

    def tps(way: str) -> float:
        return statistics.median(n / w for w, n in runs[way])

    summary: dict[str, Any] = {
        "ways": {
            w: {
                "tokens_per_s": round(tps(w), 2),
                "wall_s": round(statistics.median(x for x, _ in runs[w]), 1),
                "tokens": int(statistics.median(n for _, n in runs[w])),
                "runs": [[round(x, 1), n] for x, n in runs[w]],
            }
            for w in ways
        },
        "ratio_to_floor": round(tps("floor") / tps("agentgraph"), 3),
        "problems": args.problems,
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    if not args.skip_server:
        summary.update(
            speedup_vs_sequential=round(tps("agentgraph") / tps("sequential"), 3),
            speedup_vs_swarm=round(tps("agentgraph") / tps("swarm"), 3),
            floor_speedup_vs_sequential=round(tps("floor") / tps("sequential"), 3),
            floor_speedup_vs_swarm=round(tps("floor") / tps("swarm"), 3),
            server_ratio_to_floor=round(tps("floor") / tps("agentgraph_server"), 3),
        )
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-server", action="store_true", help="only floor and in-process agentgraph")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
