"""Throughput and latency of ``agentgraph serve`` at 1, 8 and 32 concurrent clients.

    python bench/serve.py --backend scripted --json   # the server's own overhead
    python bench/serve.py --backend vllm --json       # the embedded model behind it

A real ``agentgraph serve`` subprocess on loopback; ``C`` clients (the official ``openai`` async
client) each send chat completions back to back until ``--requests`` have been answered. The team is
``--topology`` (default ``single``: one request to the engine per completion, so the figure is the
server's per-completion cost; ``full:3`` shows a debate). Reported per concurrency: completions per
second, p50/p95 latency, the serving's own cost (latency minus the session's own seconds, which the
response carries as ``agentgraph.wall_s``: HTTP both ways, JSON, the client library, the fsync),
engine requests per completion. With ``--json`` the last line is one JSON object whose ``rows``
hold ``clients``, ``requests``, ``rps``, ``p50_s``, ``p95_s``, ``p50_overhead_s``,
``p95_overhead_s``, ``engine_requests_per_completion`` and ``wall_s``.
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

import numpy as np
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import start_serve as start  # noqa: E402  (one way to start a server)


async def load(url: str, model: str, clients: int, total: int) -> tuple[list[float], float, int, list[float]]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=900) as c:
        return await _load(c, model, clients, total)


async def _load(
    c: openai.AsyncOpenAI, model: str, clients: int, total: int
) -> tuple[list[float], float, int, list[float]]:
    latencies: list[float] = []
    overheads: list[float] = []
    engine_requests = 0
    left = total

    async def client(i: int) -> None:
        nonlocal left, engine_requests
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            r = await c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"What is {i} + {left}?"}]
            )
            latencies.append(time.perf_counter() - t0)
            overheads.append(latencies[-1] - float(r.model_extra["agentgraph"]["wall_s"]))
            engine_requests += int(r.model_extra["agentgraph"]["requests"])

    start_t = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, time.perf_counter() - start_t, engine_requests, overheads


def main(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    extra = ["--scripted", "tests.agents:calc"] if args.backend == "scripted" else ["--max-tokens", "16"]
    proc, url = start(
        tmp, "--topology", args.topology, "--rounds", "1", *extra, backend=args.backend, timeout=300
    )
    rows = []
    try:
        for clients in [int(c) for c in args.clients.split(",")]:
            total = max(args.requests, clients)
            asyncio.run(load(url, args.topology, clients, clients))  # warm-up
            lat, wall, engine, over = asyncio.run(load(url, args.topology, clients, total))
            row = {
                "clients": clients,
                "requests": total,
                "rps": total / wall,
                "p50_s": float(np.percentile(lat, 50)),
                "p95_s": float(np.percentile(lat, 95)),
                "p50_overhead_s": float(np.percentile(over, 50)),
                "p95_overhead_s": float(np.percentile(over, 95)),
                "engine_requests_per_completion": engine / total,
                "wall_s": wall,
            }
            rows.append(row)
            print(
                f"{clients:>3} clients: {row['rps']:8.1f} completions/s  p50 {row['p50_s'] * 1000:8.1f} ms  "
                f"p95 {row['p95_s'] * 1000:8.1f} ms  overhead p50 {row['p50_overhead_s'] * 1000:6.1f} ms  "
                f"({total} requests, {wall:.1f} s)",
                file=sys.stderr,
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return {"backend": args.backend, "topology": args.topology, "rows": rows}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="scripted", help="scripted (server overhead) | vllm (embedded model)")
    p.add_argument("--topology", default="single", help="the served team")
    p.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    p.add_argument("--requests", type=int, default=200, help="completions per concurrency level")
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    a = p.parse_args()
    out = main(a)
    if a.json:
        print(json.dumps(out))
