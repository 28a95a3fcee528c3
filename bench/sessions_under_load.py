"""Sessions under load: vLLM's first-come-first-served order against program-aware priorities.

    python bench/sessions_under_load.py --json                    # in-process engine
    python bench/sessions_under_load.py --through serve --json    # agentgraph serve, HTTP clients

``--sessions`` sessions of ``--topology`` (default ``full:3``) × ``--rounds`` (2) on the embedded model
arrive as a seeded Poisson stream at ``--rate`` sessions per second — faster than the engine finishes
them — and the engine batches at most ``--max-num-seqs`` requests (16), so requests queue. On a GPU
the KV cache sets that limit; at vLLM's default of 256 all 192 requests of 64 sessions fit one batch
on this CPU and no order can matter (measured: FCFS p50 174.8 s, session-age 173.5 s). For each
policy of :mod:`agentgraph.backends.priority` a fresh engine runs the same arrivals and problems
(one warm-up session first, not timed). Latency is a session's arrival to its result; tokens/s is
every generated token over the run's wall time (first arrival to last result). With ``--through
serve`` the sessions are chat completions to an ``agentgraph serve`` subprocess started with
``--scheduling POLICY``, each sent at its arrival time by its own client.

With ``--json`` the last line is one JSON object; its ``rows`` hold, per policy, ``policy``,
``sessions``, ``p50_s``, ``p95_s``, ``mean_s``, ``tokens_per_s``, ``wall_s``, ``p50_vs_fcfs`` and
``tokens_per_s_vs_fcfs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import agentgraph as ag  # noqa: E402
from agentgraph.backends.priority import POLICIES  # noqa: E402


def arrivals(n: int, rate: float, seed: int) -> list[float]:
    """Seconds from the start at which each session arrives (exponential gaps, mean 1/rate)."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
    return [0.0, *np.cumsum(gaps[1:]).tolist()]


def team(args: argparse.Namespace) -> ag.Team:
    sampling = ag.SamplingOverrides(temperature=0.7, max_tokens=args.max_tokens)
    return ag.shape(args.topology, rounds=args.rounds, sampling=sampling)


async def in_process(
    policy: str, problems: list[str], at: list[float], args: argparse.Namespace
) -> list[Any]:
    out = Path(args.out) / policy
    out.mkdir(parents=True, exist_ok=True)
    engine = {"log_file": out / "engine.log", "max_num_seqs": args.max_num_seqs}
    backend = ag.backends.create("vllm", seed=args.seed, max_model_len=1024, scheduling=policy, engine=engine)
    t = team(args)
    async with backend:
        await ag.solve(t, "What is 1 + 1?", backend)  # warm-up: compiled paths, prefix cache of the prompts
        t0 = time.perf_counter()

        async def one(i: int) -> tuple[float, float, int]:
            await asyncio.sleep(max(0.0, at[i] - (time.perf_counter() - t0)))
            arrived = time.perf_counter() - t0
            r = await ag.solve(t, problems[i], backend)
            return arrived, time.perf_counter() - t0, r.usage.completion_tokens

        return list(await asyncio.gather(*(one(i) for i in range(len(problems)))))


async def through_serve(
    policy: str, problems: list[str], at: list[float], args: argparse.Namespace
) -> list[Any]:
    from tests.servers import start_serve

    out = Path(args.out) / f"serve-{policy}"
    out.mkdir(parents=True, exist_ok=True)
    proc, url = start_serve(
        out, "--topology", args.topology, "--rounds", str(args.rounds), "--max-tokens", str(args.max_tokens),
        "--temperature", "0.7", "--max-model-len", "1024", "--scheduling", policy,
        "--max-num-seqs", str(args.max_num_seqs),
        backend="vllm", timeout=600,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=3600, limits=httpx.Limits(max_connections=None)) as c:

            async def ask(problem: str) -> int:
                body = {"model": args.topology, "messages": [{"role": "user", "content": problem}]}
                r = await c.post(f"{url}/v1/chat/completions", json=body)
                r.raise_for_status()
                return int(r.json()["usage"]["completion_tokens"])

            await ask("What is 1 + 1?")
            t0 = time.perf_counter()

            async def one(i: int) -> tuple[float, float, int]:
                await asyncio.sleep(max(0.0, at[i] - (time.perf_counter() - t0)))
                arrived = time.perf_counter() - t0
                tokens = await ask(problems[i])
                return arrived, time.perf_counter() - t0, tokens

            return list(await asyncio.gather(*(one(i) for i in range(len(problems)))))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    problems = [p.question for p in ag.load_dataset(f"arith:n={args.sessions},seed={args.seed}")]
    at = arrivals(len(problems), args.rate, args.seed)
    rows: list[dict[str, Any]] = []
    for policy in args.policies.split(","):
        run = through_serve if args.through == "serve" else in_process
        done = await run(policy, problems, at, args)
        latency = np.array([end - arrived for arrived, end, _ in done])
        wall = max(end for _, end, _ in done) - min(arrived for arrived, _, _ in done)
        row = {
            "policy": policy,
            "sessions": len(done),
            "p50_s": float(np.percentile(latency, 50)),
            "p95_s": float(np.percentile(latency, 95)),
            "mean_s": float(latency.mean()),
            "tokens_per_s": sum(tok for _, _, tok in done) / wall,
            "wall_s": wall,
        }
        rows.append(row)
        print(
            f"{policy:>17}: p50 {row['p50_s']:6.1f} s  p95 {row['p95_s']:6.1f} s  "
            f"{row['tokens_per_s']:6.1f} tok/s  wall {wall:6.1f} s",
            file=sys.stderr,
        )
    base = next((r for r in rows if r["policy"] == "fcfs"), rows[0])
    for r in rows:
        r["p50_vs_fcfs"] = r["p50_s"] / base["p50_s"]
        r["tokens_per_s_vs_fcfs"] = r["tokens_per_s"] / base["tokens_per_s"]
    return {
        "through": args.through,
        "topology": args.topology,
        "rounds": args.rounds,
        "sessions": args.sessions,
        "rate": args.rate,
        "max_tokens": args.max_tokens,
        "max_num_seqs": args.max_num_seqs,
        "seed": args.seed,
        "rows": rows,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=64)
    p.add_argument("--rate", type=float, default=4.0, help="sessions arriving per second (Poisson)")
    p.add_argument("--topology", default="full:3")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=24, help="per agent turn")
    p.add_argument(
        "--max-num-seqs",
        type=int,
        default=16,
        help="the engine's batch: requests beyond it queue (at vLLM's 256 every request of 64 sessions "
        "fits one batch on a CPU and no order can matter)",
    )
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated; fcfs first is the base")
    p.add_argument("--through", choices=("engine", "serve"), default="engine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=f"runs/sessions-under-load-{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    for policy in args.policies.split(","):
        if policy not in POLICIES:
            p.error(f"--policies: unknown policy {policy!r} (use {', '.join(POLICIES)})")
    return args


if __name__ == "__main__":
    a = parse_args()
    summary = asyncio.run(main(a))
    if a.json:
        print(json.dumps(summary))
