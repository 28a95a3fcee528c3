"""Training throughput of role GRPO against TRL's own ``GRPOTrainer``: trained samples per second.

Both train LoRA adapters (same rank and targets) on the embedded model with the same prompt ("What is
a + b?" under the adder role card), group size, completion length and problems per step, β = 0, one
optimizer step per generation batch. TRL trains one policy on one completion per sample and generates
with transformers (``use_vllm=False``: TRL's vLLM modes need a GPU server or colocated CUDA). Ours
runs once per ``--agents`` entry: 1 = the adder alone (identical work to TRL's: the same prompts,
problems, G, tokens and LoRA), 2 = the learning run's adder → checker chain with both roles trained,
so each session gives two trained turns; rollouts run on the in-process vLLM engine and the adapters
are hot-reloaded after each step. A sample is one completion generated (a turn, for ours), counted
the same way on both sides: ``G × problems × agents`` per step ÷ the median step time. Ours also
reports ``trained_samples_per_s``: the turns it took a gradient on (a group whose rewards are all
equal has zero advantage, and our trainer skips it; TRL runs it through backward at zero weight).
The first step of each is a warm-up and is not counted. All of it is timed in one run, one after
the other.

    python bench/role_step.py --steps 3 --problems 4 --group 8 --agents 1,2 --json

With ``--json`` the last line is one JSON object: ``rows`` (one per side: ``side`` = ``trl`` or
``ours``, ``agents``, ``samples_per_s``, ``trained_samples_per_s``, ``s_per_step``, ``ratio`` =
samples/s ÷ TRL's, ``phases`` = rollout / logprob / backward / reload seconds for ours),
``trl_samples_per_s``, and the settings.
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


async def our_steps(args: argparse.Namespace, agents: int) -> list[dict[str, float]]:
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
    if agents == 2:
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
    ap.add_argument(
        "--agents", default="1,2", help="ours, comma-separated: 1 = the adder (TRL's work), 2 = + checker"
    )
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
    try:
        agent_counts = [int(a) for a in args.agents.split(",")]
    except ValueError:
        agent_counts = []
    if not agent_counts or any(a not in (1, 2) for a in agent_counts):
        print(f"error: --agents: {args.agents!r} must list 1 and/or 2 (e.g. 1,2)", file=sys.stderr)
        raise SystemExit(2)
    trl = [] if args.skip_trl else trl_steps(args)
    trl_s = statistics.median(trl[1:]) if len(trl) > 1 else None
    trl_rate = args.group * args.problems / trl_s if trl_s else None
    rows: list[dict[str, Any]] = []
    if trl_rate and trl_s:
        rows.append({
            "side": "trl", "agents": 1, "samples_per_s": round(trl_rate, 3), "s_per_step": round(trl_s, 3),
            "trained_samples_per_s": round(trl_rate, 3), "ratio": 1.0, "phases": None,
            "steps": [round(x, 2) for x in trl],
        })  # fmt: skip
    for agents in agent_counts:
        ours = asyncio.run(our_steps(args, agents))
        s_per_step = statistics.median([x["total"] for x in ours[1:]])
        # the unit TRL's figure has: every completion generated, whether or not its group had the
        # reward variance to train on (a group with none gives zero advantage; we skip its backward)
        rate = args.group * args.problems * agents / s_per_step
        trained = sum(x["samples"] for x in ours[1:]) / sum(x["total"] for x in ours[1:])
        phases = {
            k: round(statistics.median([x[k] for x in ours[1:]]), 3)
            for k in ours[0]
            if k not in ("total", "samples")
        }
        rows.append({
            "side": "ours", "agents": agents, "samples_per_s": round(rate, 3),
            "trained_samples_per_s": round(trained, 3), "s_per_step": round(s_per_step, 3),
            "ratio": round(rate / trl_rate, 3) if trl_rate else None, "phases": phases,
            "steps": [round(x["total"], 2) for x in ours],
        })  # fmt: skip
    for r in rows:
        print(
            f"{r['side']:>4} agents={r['agents']}: {r['samples_per_s']:.3f} samples/s, "
            f"{r['s_per_step']:.1f} s/step, ratio {r['ratio']}, phases {r['phases']}",
            file=sys.stderr,
        )
    summary = {
        "rows": rows,
        "trl_samples_per_s": round(trl_rate, 3) if trl_rate else None,
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
