"""Engine throughput by dtype on this machine: why ``VLLM()`` picks float32 on CPU.

    python bench/engine_dtype.py --dtype float32 --json
    python bench/engine_dtype.py --dtype bfloat16 --json
    python bench/engine_dtype.py --block-size 32 --no-prefix-cache --json   # KV block size vs decode speed

Starts the in-process engine on the embedded model, warms it with one batch, then times a batch of
``--batch`` chat prompts generating up to ``--max-tokens`` tokens each. With ``--json`` the last line
is one JSON object (``dtype``, ``block_size``, ``prefix_cache``, ``tokens``, ``seconds``,
``tokens_per_s``, ``startup_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import agentgraph as ag
from agentgraph.backends import VLLM, GenerationRequest


async def main(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.perf_counter()
    kwargs = {"block_size": args.block_size} if args.block_size else {}
    engine_ = VLLM(
        dtype=args.dtype, seed=0, enable_prefix_caching=not args.no_prefix_cache, engine_kwargs=kwargs
    )
    async with engine_ as engine:
        startup = time.perf_counter() - t0
        sampling = ag.Sampling(temperature=0.7, max_tokens=args.max_tokens)

        def req(i: int) -> GenerationRequest:
            text = f"What is {i} + {2 * i}? Explain briefly."
            return GenerationRequest(messages=(ag.ChatMessage(role="user", content=text),), sampling=sampling)

        await asyncio.gather(*(engine.generate(req(i)) for i in range(args.batch)))  # warm-up
        t = time.perf_counter()
        outs = await asyncio.gather(*(engine.generate(req(i + 1000)) for i in range(args.batch)))
        dt = time.perf_counter() - t
    tokens = sum(o.completion_tokens for o in outs)
    return {
        "dtype": args.dtype,
        "block_size": args.block_size or "engine default",
        "prefix_cache": not args.no_prefix_cache,
        "batch": args.batch,
        "tokens": tokens,
        "seconds": round(dt, 2),
        "tokens_per_s": round(tokens / dt, 1),
        "startup_s": round(startup, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "auto"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--block-size", type=int, help="KV cache block size (vLLM's CPU default is 128)")
    p.add_argument("--no-prefix-cache", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    r = asyncio.run(main(a))
    print(
        f"{r['dtype']}, block {r['block_size']}: {r['tokens']} tokens in {r['seconds']} s = "
        f"{r['tokens_per_s']} tokens/s (batch {r['batch']})"
    )
    if a.json:
        print(json.dumps(r))
