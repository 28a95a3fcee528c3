"""Generation speed with and without a LoRA adapter on the in-process engine, with and without
agentgraph's CPU LoRA plugin (``agentgraph.backends.cpu_lora``).

    python bench/lora_serving.py --json

64 chat prompts ("What is i + 7? Answer with just the number."), 12 new tokens at temperature 1,
all in flight; each configuration measured twice after the engine's first batch, best of the two.
The plugin is switched with ``AGENTGRAPH_CPU_LORA`` in a fresh process per setting (vLLM loads
plugins when its processes start). With ``--json`` the last line is one JSON object:
``base_tok_s``, ``lora_tok_s`` for ``plugin`` and ``vllm_ops``, and ``lora_speedup``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def measure(prompts: int, max_tokens: int) -> dict[str, float]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import agentgraph as ag
    from agentgraph.backends import VLLM, Adapter, GenerationRequest
    from agentgraph.core.models import provision
    from agentgraph.train.config import LORA_TARGETS

    folder = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    model = AutoModelForCausalLM.from_pretrained(provision())
    get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS))).save_pretrained(
        folder
    )
    adapter = Adapter("bench", str(folder))
    s = ag.Sampling(temperature=1.0, max_tokens=max_tokens)
    rates: dict[str, list[float]] = {"base": [], "lora": []}
    async with VLLM(enable_lora=True, max_lora_rank=16, max_model_len=512) as engine:
        msgs = [
            (ag.ChatMessage(role="user", content=f"What is {i} + 7? Answer with just the number."),)
            for i in range(prompts)
        ]
        for k, ad in enumerate((None, None, adapter, None, adapter, adapter)):
            start = time.perf_counter()
            out = await asyncio.gather(
                *(engine.generate(GenerationRequest(messages=m, sampling=s, adapter=ad)) for m in msgs)
            )
            rate = sum(c.completion_tokens for c in out) / (time.perf_counter() - start)
            if k > 0:  # the first batch warms the engine up
                rates["lora" if ad else "base"].append(rate)
    return {k: round(max(v), 1) for k, v in rates.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: this process only
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(asyncio.run(measure(args.prompts, args.max_tokens))))
        return {}
    results: dict[str, Any] = {}
    for name, flag in (("plugin", "1"), ("vllm_ops", "0")):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            "--prompts",
            str(args.prompts),
            "--max-tokens",
            str(args.max_tokens),
        ]
        env = dict(os.environ, AGENTGRAPH_CPU_LORA=flag)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        if not args.json:
            print(name, results[name])
    summary = {
        **results,
        "lora_speedup": round(results["plugin"]["lora"] / results["vllm_ops"]["lora"], 2),
        "prompts": args.prompts,
        "max_tokens": args.max_tokens,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
