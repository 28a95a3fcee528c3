"""Training throughput of role GRPO against TRL's own ``GRPOTrainer``: trained samples per second.

Both train LoRA adapters (same rank and targets) on the embedded model with the same prompt ("What is
a + b?" under the adder role card), group size, completion length and problems per step, β = 0, one
optimizer step per generation batch. TRL trains one policy on one completion per sample and generates
with transformers (``use_vllm=False``: TRL's vLLM modes need a GPU server or colocated CUDA). Ours
trains ``--roles`` roles: 1 = the adder alone, 2 = the learning run's adder → checker chain with both
roles trained, so each session gives two trained turns; rollouts run on the in-process vLLM engine and
the adapters are hot-reloaded after each step. A sample is one trained completion (TRL) or turn
(ours). The first step of each is a warm-up and is not counted.

    python bench/role_step.py --steps 4 --problems 4 --group 8 --roles 2 --json

With ``--json`` the last line is one JSON object: ``trl_samples_per_s``, ``ours_samples_per_s``,
``speedup`` (ours ÷ TRL), ``trl_s_per_step``, ``ours_s_per_step``, ``ours_phases`` (rollout /
logprob / backward / reload seconds), and the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.train_roles_arith import ADDER, additions, make_team


def trl_steps(args: argparse.Namespace) -> list[float]:
    from transformers import TrainerCallback

    from examples.trl_adder import trl_adder_trainer

    times: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter() - self.t)

    trainer = trl_adder_trainer(
        additions(64, seed=args.seed),
        group=args.group,
        problems_per_step=args.problems,
        max_tokens=args.max_tokens,
        lr=args.lr,
        rank=args.rank,
        targets=args.targets,
        seed=args.seed,
        max_steps=args.steps,
        callbacks=[Clock()],
    )
    trainer.train()
    return times


async def our_steps(args: argparse.Namespace) -> list[dict[str, float]]:
    import agentgraph as ag
    from agentgraph.backends import VLLM
    from agentgraph.graph.generators import single
    from agentgraph.roles.book import RoleBook
    from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer

    config = RoleGRPOConfig(
        train_roles=("adder",),
        group_size=args.group,
        problems_per_step=args.problems,
        steps=args.steps,
        learning_rate=args.lr,
        max_completion_length=args.max_tokens,
        lora_r=args.rank,
        lora_alpha=2 * args.rank,
        lora_targets=tuple(args.targets),
        kl_every=0,
        eval_every=0,
        seed=args.seed,
    )
    team = ag.Team(single("adder", memory=False), rounds=1, roles=RoleBook([ADDER]))
    if args.roles == 2:
        team = make_team()
        config = config.model_copy(update={"train_roles": ("adder", "checker")})
    out: list[dict[str, float]] = []
    async with VLLM(enable_lora=True, max_lora_rank=args.rank, max_model_len=512, seed=args.seed) as engine:
        trainer = RoleGRPOTrainer(team, additions(64, seed=args.seed), engine, config)
        await trainer.publish()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            entry = await trainer.train_step()
            out.append({"total": time.perf_counter() - t0, "samples": entry.turns, **entry.seconds})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--problems", type=int, default=4, help="problems per step")
    ap.add_argument("--roles", type=int, choices=(1, 2), default=2, help="ours: trained roles (1: adder)")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument(
        "--targets",
        nargs="+",
        default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trl = [] if args.skip_trl else trl_steps(args)
    ours = asyncio.run(our_steps(args))
    trl_s = statistics.median(trl[1:]) if len(trl) > 1 else None
    ours_s = statistics.median([x["total"] for x in ours[1:]])
    phases = {
        k: round(statistics.median([x[k] for x in ours[1:]]), 3)
        for k in ours[0]
        if k not in ("total", "samples")
    }
    trl_rate = args.group * args.problems / trl_s if trl_s else None
    ours_rate = sum(x["samples"] for x in ours[1:]) / sum(x["total"] for x in ours[1:])
    summary = {
        "trl_samples_per_s": round(trl_rate, 3) if trl_rate else None,
        "ours_samples_per_s": round(ours_rate, 3),
        "speedup": round(ours_rate / trl_rate, 3) if trl_rate else None,
        "trl_s_per_step": round(trl_s, 3) if trl_s else None,
        "ours_s_per_step": round(ours_s, 3),
        "roles": args.roles,
        "ours_phases": phases,
        "trl_steps": [round(x, 2) for x in trl],
        "ours_steps": [round(x["total"], 2) for x in ours],
        "group": args.group,
        "problems_per_step": args.problems,
        "max_tokens": args.max_tokens,
        "rank": args.rank,
        "targets": args.targets,
        "steps": args.steps,
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
