"""Role GRPO on generated arithmetic with the embedded model, on the in-process vLLM engine.

A two-agent chain: an ``adder`` answers "What is a + b?" with just the number, then a ``checker``
reads that answer and gives the team's final answer. Both roles get their own LoRA adapter; rollouts
are real team sessions on vLLM (G per problem, all in flight), updates are TRL's GRPO loss, and the
new adapters are hot-loaded into the running engine after every step. Held-out team accuracy (greedy)
is measured before training and every ``--eval-every`` steps; the best adapters are kept.

    python examples/train_roles_arith.py --minutes 30 --json

With ``--json`` the last line is one JSON object: ``accuracy_before``, ``accuracy_after`` (the
final adapters), ``accuracy_best`` and ``best_step``, ``heldout_problems``, ``steps``, ``minutes``,
``curve`` ([step, held-out accuracy] pairs) and ``seconds_per_step`` by phase (rollout, logprob,
backward, reload).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

import agentgraph as ag
from agentgraph.backends import VLLM
from agentgraph.datasets import Problem
from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer
from roles import Role, RoleBook
from topologies import chain

ADDER = Role(
    name="adder",
    system_prompt="You are a calculator.",
    instruction="Answer with just the number.",
)
CHECKER = Role(
    name="checker",
    system_prompt="You are a calculator. Another calculator answered first; it may be wrong.",
    instruction="Answer with just the number.",
    peer_header="The other calculator's answer:",
    peer_template="{text}",
)


def additions(n: int, seed: int, lo: int = 2, hi: int = 30) -> list[Problem]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        out.append(Problem(id=f"add-{seed}-{i}", question=f"What is {a} + {b}?", answer=str(a + b)))
    return out


def make_team() -> ag.Team:
    g = chain(2, role="adder", memory=False)
    g.nodes["a1"]["role"] = "checker"
    return ag.Team(g, rounds=1, decision="chain_tail", roles=RoleBook([ADDER, CHECKER]))


async def run(args: argparse.Namespace) -> dict[str, object]:
    train = additions(args.train, seed=args.seed)
    heldout = additions(args.heldout, seed=10_000 + args.seed)
    config = RoleGRPOConfig(
        train_roles=("adder", "checker"),
        group_size=args.group,
        problems_per_step=args.problems_per_step,
        steps=args.steps,
        learning_rate=args.lr,
        max_completion_length=args.max_tokens,
        eval_every=args.eval_every,
        time_limit_min=args.minutes,
        lora_r=args.rank,
        lora_alpha=2 * args.rank,
        seed=args.seed,
    )
    started = time.perf_counter()
    async with VLLM(
        enable_lora=True, max_lora_rank=args.rank, max_loras=4, max_model_len=512, seed=args.seed
    ) as engine:
        trainer = RoleGRPOTrainer(make_team(), train, engine, config, heldout=heldout, out=args.out)
        t_train = time.perf_counter()
        log = await trainer.train(progress=not args.json)
        minutes = (time.perf_counter() - t_train) / 60
    curve = trainer.evals
    phases = ["rollout", "logprob", "backward", "reload"]
    best = trainer.best or (float("nan"), 0)
    return {
        "accuracy_before": curve[0][1],
        "accuracy_after": curve[-1][1],
        "accuracy_best": best[0],
        "best_step": best[1],
        "min_after_start": min(a for _, a in curve[1:]) if len(curve) > 1 else None,
        "heldout_problems": len(heldout),
        "steps": trainer.step,
        "group": config.group_size,
        "problems_per_step": config.problems_per_step,
        "seed": args.seed,
        "minutes": round(minutes, 2),
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        "curve": [[s, a] for s, a in curve],
        "train_team_accuracy": [round(x.team_accuracy, 3) for x in log],
        "seconds_per_step": {p: round(float(np.mean([x.seconds[p] for x in log])), 2) for p in phases},
        "out": str(args.out),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--problems-per-step", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/roles-arith"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        summary = asyncio.run(run(args))
    except ag.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
