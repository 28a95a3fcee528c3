"""Role GRPO on generated arithmetic with the embedded model, on the in-process vLLM engine.

A two-agent chain: an ``adder`` answers "What is a + b?" with just the number, then a ``checker``
reads that answer and gives the team's final answer. Both roles get their own LoRA adapter; rollouts
are real team sessions on vLLM (G per problem, all in flight), updates are TRL's GRPO loss, and the
new adapters are hot-loaded into the running engine after every step. Held-out team accuracy (greedy)
is measured before training and every ``--eval-every`` steps; the best adapters are kept.

    python examples/train_roles_arith.py --minutes 30 --json

The long run (issue 17) adds a test set that only reports — the held-out set drives best-keeping
and the guard, so the test curve is free of that selection — and compares the guards:

    python examples/train_roles_arith.py --steps 60 --minutes 60 --problems-per-step 2 --eval-every 5 \
        --heldout 100 --test 200 --guard rollback --plot docs/img/roles_long_run.png --json

With ``--json`` the last line is one JSON object: ``accuracy_before``, ``accuracy_after`` (the
final adapters), ``accuracy_best`` and ``best_step``, ``heldout_problems``, ``steps``, ``minutes``,
``curve`` ([step, held-out accuracy] pairs), ``test_curve`` (the same on the test set, with
``--test``), ``rollbacks`` (steps at which the guard restored the best adapters) and
``seconds_per_step`` by phase (rollout, logprob, backward, reload).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

import agentgraph as ag
from agentgraph.backends import VLLM
from agentgraph.core.answers import is_correct
from agentgraph.core.errors import from_validation
from agentgraph.eval.datasets import Problem
from agentgraph.graph.generators import chain
from agentgraph.roles.book import Role, RoleBook
from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer

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


def make_team(agents: int = 2) -> ag.Team:
    """The adder → checker chain, or (``agents=1``) the adder alone — TRL's single-policy setting."""
    g = chain(agents, role="adder", memory=False)
    if agents > 1:
        g.nodes["a1"]["role"] = "checker"
    return ag.Team(g, rounds=1, decision="chain_tail", roles=RoleBook([ADDER, CHECKER]))


class ReportingTrainer(RoleGRPOTrainer):
    """Also evaluates a test set, which nothing in training sees, at every held-out evaluation; and,
    when training runs without gold (``--reward consensus``), scores each step's pseudo-labels
    against answers the trainer never sees (``hidden``, question → answer)."""

    def __init__(self, *a: Any, test: list[Problem], hidden: dict[str, str], **k: Any) -> None:
        self.test = test
        self.tests: list[tuple[int, float]] = []
        self.hidden = hidden
        self.label_accuracy: list[float | None] = []
        self.labelled: list[float] = []
        super().__init__(*a, **k)

    def samples(self, results: Any, problem_of: Any) -> Any:
        out = super().samples(results, problem_of)
        lab = out[-1]
        question = {problem_of[k]: r.problem for k, r in enumerate(results)}
        right = [
            is_correct(label, self.hidden[question[i]])
            for i, label in lab.label.items()
            if label is not None and question[i] in self.hidden
        ]
        self.label_accuracy.append(sum(right) / len(right) if right else lab.accuracy)
        self.labelled.append(lab.labelled)
        return out

    async def evaluate_heldout(self) -> float:
        acc = await super().evaluate_heldout()
        if self.test:
            self.tests.append((self.step, await self.evaluate(self.test)))
            if self.out is not None:  # kept with the run, so --resume continues the curve
                (self.out / "test_curve.json").write_text(json.dumps(self.tests))
        return acc


def plot_long_run(summary: dict[str, Any], path: Path) -> None:
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("curve", "held-out (drives the guard)"), ("test_curve", "test (reported only)")):
        pts = summary.get(key) or []
        ax.plot([s for s, _ in pts], [a for _, a in pts], marker="o", label=label)
    for i, step in enumerate(summary["rollbacks"]):
        ax.axvline(step, color="red", ls="--", lw=0.8, label="rollback" if i == 0 else None)
    start = (summary.get("test_curve") or summary["curve"])[0][1]
    ax.axhline(start, color="grey", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("team accuracy (greedy)")
    ax.set_title(
        f"role GRPO, guard={summary['guard']}, β={summary['beta']}, seed {summary['seed']}", fontsize=9
    )
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


async def run(args: argparse.Namespace) -> dict[str, object]:
    hi = args.max_operand
    train = additions(args.train, seed=args.seed, hi=hi)
    hidden: dict[str, str] = {}
    if args.reward != "gold":  # label-free: the trainer gets no gold; the example keeps it to score labels
        hidden = {p.question: p.answer for p in train if p.answer is not None}
        train = [p.model_copy(update={"answer": None}) for p in train]
    heldout = additions(args.heldout, seed=10_000 + args.seed, hi=hi)
    test = additions(args.test, seed=20_000 + args.seed, hi=hi) if args.test else []
    config = RoleGRPOConfig(
        train_roles=("adder", "checker") if args.agents > 1 else ("adder",),
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
        guard=args.guard,
        beta=args.beta,
        reward=args.reward,
        consensus_min_share=args.consensus_min_share,
        shared_policy=args.shared_policy,
    )
    started = time.perf_counter()
    async with VLLM(
        enable_lora=True, max_lora_rank=args.rank, max_loras=4, max_model_len=512, seed=args.seed
    ) as engine:
        trainer = ReportingTrainer(
            make_team(args.agents),
            train,
            engine,
            config,
            heldout=heldout,
            out=args.out,
            test=test,
            hidden=hidden,
        )
        saved = Path(args.out) / "test_curve.json"
        if args.resume and saved.is_file():
            trainer.tests = [(int(st), float(a)) for st, a in json.loads(saved.read_text())]
        t_train = time.perf_counter()
        log = await trainer.train(resume=args.resume, progress=not args.json)
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
        "max_operand": args.max_operand,
        "minutes": round(minutes, 2),
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        "curve": [[s, a] for s, a in curve],
        "test_curve": [[s, a] for s, a in trainer.tests],
        "test_problems": len(test),
        "rollbacks": trainer.guard.rollbacks if trainer.guard is not None else [],
        "guard": config.guard,
        "agents": args.agents,
        "beta": config.beta,
        "reward": config.reward,
        "shared_policy": config.shared_policy,
        "train_team_accuracy": [None if x.team_accuracy is None else round(x.team_accuracy, 3) for x in log],
        "label_accuracy": trainer.label_accuracy,
        "labelled": trainer.labelled,
        "agreement": [x.agreement for x in log],
        "seconds_per_step": {p: round(float(np.mean([x.seconds[p] for x in log])), 2) for p in phases},
        "out": str(args.out),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, choices=[1, 2], default=2, help="2: adder → checker; 1: adder")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--problems-per-step", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--max-operand", type=int, default=30, help="operands are drawn from 2..this")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--test", type=int, default=0, help="test problems evaluated beside the held-out ones")
    ap.add_argument("--guard", choices=["rollback", "none"], default=RoleGRPOConfig().guard)
    ap.add_argument(
        "--reward",
        default="gold",
        help="gold | consensus (training problems then carry no answer) | module:function",
    )
    ap.add_argument(
        "--consensus-min-share",
        type=float,
        default=0.0,
        help="consensus: the share of a problem's votes its label needs (below: no signal)",
    )
    ap.add_argument("--shared-policy", action="store_true", help="one adapter for both roles")
    ap.add_argument("--beta", type=float, default=0.0, help="k3 KL coefficient to the base model")
    ap.add_argument(
        "--resume", action="store_true", help="continue the run in --out (e.g. with more --steps)"
    )
    ap.add_argument("--plot", type=Path, default=None, help="also draw the held-out/test curves here")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/roles-arith"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        summary = asyncio.run(run(args))
        if args.plot is not None:
            plot_long_run(summary, args.plot)
    except ag.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValidationError as e:  # the trainer config refused a flag's value
        print(f"error: {from_validation(e, '', 'see --help')}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
