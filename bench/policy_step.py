"""The trainer's optimizer step alone (log-prob pass + backward + AdamW on the LoRA adapters), timed,
with its peak memory against the estimate the colocated engine is sized by
(:func:`agentgraph.train.memory.trainer_bytes`).

No engine and no rollouts: the batch is ``--group`` × ``--problems`` turns of random tokens (each
problem's turns share a ``--prompt``-token prompt; ``--completion`` tokens each, advantages ±1), so
the figure is the trainer's cost at a given shape, on whatever device torch finds. The model is a
random-weight Qwen2 built from a config (nothing is downloaded):

- ``tiny``: 2 layers, hidden 128, the embedded tokenizer's vocabulary (runs anywhere in seconds);
- ``r1-1.5b``: DeepSeek-R1-Distill-Qwen-1.5B's shape (28 layers, hidden 1536, intermediate 8960,
  12 heads / 2 KV heads, 151,936-token vocabulary) — for a GPU.

On CUDA the trainer's defaults apply (bf16 base weights, fp32 adapters, gradient checkpointing);
``peak_gib`` is ``torch.cuda.max_memory_allocated`` over the whole run (weights included) plus the
CUDA context as ``torch.cuda.mem_get_info`` sees it, against ``estimate_gib``; ``resident_gib`` is
what was allocated once the policy was built (weights, adapters), before the first step. On CPU
``peak_gib`` is the process's resident high-water mark.

    python bench/policy_step.py --shape r1-1.5b --json

With ``--json`` the last line is one JSON object: ``shape``, ``device``, ``dtype``, ``turns``,
``tokens``, ``step_s`` (median over ``--steps`` after one warm-up), ``tokens_per_s``, ``seconds``
(the step's forward / backward split), ``peak_gib``, ``resident_gib``, ``estimate_gib``, ``estimate_ratio``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES: dict[str, dict[str, Any]] = {
    "r1-1.5b": {
        "vocab_size": 151_936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 131_072,
        "rope_theta": 10_000.0, "tie_word_embeddings": False,
    },
}  # fmt: skip


def build(shape: str, root: Path) -> str:
    from agentgraph.testing.tiny import tiny_model

    if shape == "tiny":
        return tiny_model(root)
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = root / shape
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(Qwen2Config(**SHAPES[shape])).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)  # type: ignore[no-untyped-call]
    del model
    return str(out)


def rss_high_water_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 2**30
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from agentgraph.train import RoleGRPOConfig
    from agentgraph.train.memory import GIB, trainer_bytes
    from agentgraph.train.policies.lora import LoRAPolicy, Sample

    with tempfile.TemporaryDirectory() as tmp:
        model = build(args.shape, Path(tmp))
        config = RoleGRPOConfig(
            train_roles=("solver",),
            group_size=args.group,
            problems_per_step=args.problems,
            lora_r=args.rank,
            micro_batch=args.micro_batch,
            seed=0,
        )
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            free0, _ = torch.cuda.mem_get_info()
        policy = LoRAPolicy(model, config)
        estimate = trainer_bytes(model, config, args.prompt + args.completion, bf16=cuda)
        resident = torch.cuda.memory_allocated() if cuda else 0  # weights + adapters + moments (none yet)
    g = torch.Generator().manual_seed(0)
    vocab = policy.vocab

    def batch() -> list[Sample]:
        out = []
        for _ in range(args.problems):
            prompt = torch.randint(0, vocab, (args.prompt,), generator=g).tolist()
            for i in range(args.group):
                comp = torch.randint(0, vocab, (args.completion,), generator=g).tolist()
                out.append(Sample("solver", prompt, comp, None, 1.0 if i % 2 else -1.0))
        return out

    turns = args.group * args.problems
    times: list[float] = []
    splits: list[dict[str, float]] = []
    for i in range(args.steps + 1):
        samples = batch()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        stats = policy.update(samples, n_seq=turns, n_tok=turns * args.completion)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i:  # the first step is the warm-up (kernels, allocator)
            times.append(dt)
            splits.append(stats.seconds)
        print(f"step {i}: {dt:.3f} s, grad norm {stats.grad_norm:.3g}", file=sys.stderr)
    if cuda:
        free1, _ = torch.cuda.mem_get_info()
        # the CUDA context and kernels: taken from the card, not seen by torch's allocator
        context = max(0, (free0 - free1) - torch.cuda.memory_reserved())
        peak = (torch.cuda.max_memory_allocated() + context) / GIB
    else:
        peak = rss_high_water_gib()
    step = statistics.median(times)
    return {
        "shape": args.shape,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": "bf16 weights, fp32 adapters" if cuda else "fp32",
        "gradient_checkpointing": policy.gradient_checkpointing,
        "turns": turns,
        "tokens": turns * (args.prompt + args.completion),
        "step_s": round(step, 4),
        "tokens_per_s": round(turns * (args.prompt + args.completion) / step, 1),
        "seconds": {k: round(statistics.median(s[k] for s in splits), 4) for k in splits[0]},
        "peak_gib": round(peak, 3),
        "resident_gib": round(resident / GIB, 3),
        "estimate_gib": round(estimate / GIB, 3),
        "estimate_ratio": round(estimate / GIB / peak, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="tiny", choices=["tiny", *SHAPES], help="the random-weight model")
    ap.add_argument("--group", type=int, default=8, help="turns per problem (G)")
    ap.add_argument("--problems", type=int, default=4, help="problems per step")
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens (shared by a problem's turns)")
    ap.add_argument("--completion", type=int, default=1024, help="completion tokens per turn")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (all projections)")
    ap.add_argument("--micro-batch", type=int, default=16, help="turns per forward/backward")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if min(args.group, args.problems, args.prompt, args.completion, args.steps, args.micro_batch) < 1:
        names = "--group, --problems, --prompt, --completion, --steps, --micro-batch"
        print(f"error: {names}: each must be ≥ 1", file=sys.stderr)
        raise SystemExit(2)
    out = run(args)
    print(
        f"{out['shape']} on {out['device']}: {out['turns']} turns × {args.prompt}+{args.completion} tokens, "
        f"step {out['step_s']:.2f} s ({out['tokens_per_s']:.0f} tokens/s), "
        f"peak {out['peak_gib']:.2f} GiB, estimate {out['estimate_gib']:.2f} GiB"
    )
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
