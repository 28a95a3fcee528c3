"""What training buys, at the same wall-clock budget: six arms on the embedded model, one vLLM engine.

Generated arithmetic ("What is a + b?", a, b in 2–30) with the short-answer cards of
``train_roles_arith.py``. The arms, each evaluated greedily on the same held-out problems:

- ``single``: the base ``adder`` alone (no training);
- ``single+trl``: the adder trained with TRL's own ``GRPOTrainer`` (LoRA, transformers generation:
  TRL's vLLM modes need CUDA), its saved adapter then served by the same vLLM engine for evaluation;
- ``team``: the base team (an adder ``a0`` and two checkers ``a1``, ``a2``; edges a0→a1, a0→a2,
  a1→a2; majority vote of the three);
- ``team+roles``: role GRPO on both roles of the team (one LoRA adapter per role);
- ``team+graph``: graph GRPO on the team's three edges, with a token cost;
- ``team+joint``: both from the same rollouts (``JointTrainer``).

Every training arm gets ``--minutes`` of training wall-clock (evaluations excluded; a step that
starts before the limit finishes). The held-out accuracy is measured at ``--eval-points`` equally
spaced marks of training time. The two single-agent arms also get a ``sc:3`` row (three sampled
answers, plurality vote), the self-consistency baseline at about the team's tokens.

    python examples/compare_training.py --minutes 10 --json

With ``--json`` the last line is one JSON object with ``rows`` (each: ``arm``, ``accuracy``,
``ci95``, ``minutes``, ``tokens_per_problem``, ``steps``, ``curve`` = [[minutes, accuracy], …]),
``heldout_problems``, ``seed``, ``plot``; the plot (``--plot``, default
``docs/img/training_arms.png``) shows held-out accuracy against minutes of training.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM
from agentgraph.backends.base import Adapter
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.core.stats import wilson
from agentgraph.eval.datasets import Problem
from agentgraph.eval.evaluation import evaluate
from agentgraph.roles.book import RoleBook
from agentgraph.train import (
    GraphGRPOConfig,
    GraphGRPOTrainer,
    JointConfig,
    JointTrainer,
    RoleGRPOConfig,
    RoleGRPOTrainer,
)
from examples.train_roles_arith import ADDER, CHECKER, additions

ARMS = ("single", "single+trl", "team", "team+roles", "team+graph", "team+joint")
BOOK = RoleBook([ADDER, CHECKER])


def single_topology() -> ag.Topology:
    g = ag.Topology(name="single")
    g.add_agent("a0", "adder", root=True)
    return g


def team_topology() -> ag.Topology:
    g = ag.Topology(name="adder+2 checkers")
    g.add_agent("a0", "adder")
    g.add_agent("a1", "checker")
    g.add_agent("a2", "checker", root=True)
    for u, v in (("a0", "a1"), ("a0", "a2"), ("a1", "a2")):
        g.add_spatial(u, v, logit=0.0)
    return g


def make_team(g: ag.Topology, *, temperature: float = 1.0, max_tokens: int = 12) -> ag.Team:
    decision = "majority" if len(g.agents) > 1 else "chain_tail"
    t = ag.Team(g, rounds=1, decision=decision, roles=BOOK)
    t.sampling = SamplingOverrides(temperature=temperature, max_tokens=max_tokens)
    return t


class Arm:
    """One arm's figures: the curve of (training minutes, held-out accuracy) and the final eval."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.curve: list[tuple[float, float]] = []
        self.steps = 0
        self.minutes = 0.0
        self.final: ag.Metrics | None = None
        self.extra: dict[str, Any] = {}
        self.saved: list[tuple[float, Path]] = []  # TRL's adapters at the marks: (minutes, path)

    def row(self) -> dict[str, Any]:
        m = self.final
        assert m is not None
        lo, hi = wilson(m.correct, m.n)
        return {
            "arm": self.name,
            "accuracy": m.accuracy,
            "ci95": [round(lo, 4), round(hi, 4)],
            "minutes": round(self.minutes, 2),
            "tokens_per_problem": round(m.prompt_tokens_per_problem + m.completion_tokens_per_problem, 1),
            "steps": self.steps,
            "curve": [[round(x, 2), a] for x, a in self.curve],
            **({"adapters": [str(p) for _, p in self.saved]} if self.saved else {}),
            **self.extra,
        }


async def held_out(team: ag.Team, problems: list[Problem], engine: VLLM, tag: str) -> ag.Metrics:
    metrics, _ = await evaluate(team, problems, engine, progress=False, session_prefix=f"{tag}-")
    return metrics


async def drive(
    arm: Arm,
    step: Callable[[], Awaitable[object]],
    measure: Callable[[str], Awaitable[ag.Metrics]],
    minutes: float,
    points: int,
    say: Callable[[str], None],
) -> None:
    """Steps until ``minutes`` of step time; held-out evaluations at equal marks, not counted."""
    marks = [minutes * (i + 1) / points for i in range(points)]
    spent = 0.0
    while marks:
        t0 = time.perf_counter()
        await step()
        spent += (time.perf_counter() - t0) / 60
        arm.steps += 1
        while marks and spent >= marks[0] - 1e-9:
            marks.pop(0)
            m = await measure(f"{arm.name}-{arm.steps}")
            arm.curve.append((spent, m.accuracy))
            arm.final = m
            say(f"  {arm.name}: {spent:5.1f} min, {arm.steps} steps, held-out {m.accuracy:.3f}")
    arm.minutes = spent


def train_trl(args: argparse.Namespace, train: list[Problem], out: Path, say: Callable[[str], None]) -> Arm:
    """TRL's ``GRPOTrainer`` on the adder for ``minutes``; adapters saved at the evaluation marks."""
    from transformers import TrainerCallback

    from examples.trl_adder import trl_adder_trainer

    arm = Arm("single+trl")
    marks = [args.minutes * (i + 1) / args.eval_points for i in range(args.eval_points)]

    class Budget(TrainerCallback):
        spent = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model = kwargs["model"]
            self.spent += (time.perf_counter() - self.t) / 60
            arm.steps = int(state.global_step)
            while marks and self.spent >= marks[0] - 1e-9:
                marks.pop(0)
                path = out / f"trl-{arm.steps}"
                model.save_pretrained(str(path))  # the PEFT adapter alone
                arm.saved.append((self.spent, path))
                say(f"  single+trl: {self.spent:5.1f} min, {arm.steps} steps, adapter saved")
            if not marks:
                control.should_training_stop = True

    budget = Budget()
    trainer = trl_adder_trainer(
        train,
        group=args.group,
        problems_per_step=args.problems_per_step,
        max_tokens=args.max_tokens,
        lr=args.lr,
        rank=args.rank,
        targets=RoleGRPOConfig().lora_targets,
        seed=args.seed,
        max_steps=100_000,  # the time budget stops it
        callbacks=[budget],
    )
    trainer.train()
    arm.minutes = budget.spent
    return arm


async def run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    train = additions(args.train, seed=args.seed)
    heldout = additions(args.heldout, seed=10_000 + args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms: dict[str, Arm] = {}
    greedy = {"temperature": 0.0, "max_tokens": args.max_tokens}
    roles_cfg = RoleGRPOConfig(
        train_roles=("adder", "checker"),
        group_size=args.group,
        problems_per_step=args.problems_per_step,
        learning_rate=args.lr,
        max_completion_length=args.max_tokens,
        lora_r=args.rank,
        eval_every=0,
        seed=args.seed,
    )
    graph_cfg = GraphGRPOConfig(
        group_size=args.group,
        problems_per_step=args.problems_per_step,
        learning_rate=args.graph_lr,
        token_cost=args.token_cost,
        select_problems=0,
        seed=args.seed,
    )
    trl_arm = train_trl(args, train, out, say) if "single+trl" in args.arms else None  # before vLLM starts
    async with VLLM(
        enable_lora=True, max_lora_rank=args.rank, max_loras=4, max_model_len=512, seed=args.seed
    ) as engine:

        async def base(name: str, g: ag.Topology) -> None:
            arm = Arm(name)
            arm.final = await held_out(make_team(g, **greedy), heldout, engine, name)
            arm.curve = [(0.0, arm.final.accuracy)]
            say(f"  {name}: held-out {arm.final.accuracy:.3f}")
            arms[name] = arm

        async def sc3(name: str, adapter: Adapter | None) -> None:
            g = ag.Topology(name="sc:3")
            for i in range(3):
                g.add_agent(f"a{i}", "adder")
            t = ag.Team(g, rounds=1, decision="majority", roles=BOOK)
            t.sampling = SamplingOverrides(temperature=args.sc_temperature, max_tokens=args.max_tokens)
            if adapter is not None:
                t.adapters = {"adder": adapter}
            arm = Arm(name)
            arm.final = await held_out(t, heldout, engine, name)
            say(f"  {name}: held-out {arm.final.accuracy:.3f}")
            arms[name] = arm

        if "single" in args.arms:
            await base("single", single_topology())
            await sc3("single sc:3", None)
        if "team" in args.arms:
            await base("team", team_topology())
        if trl_arm is not None:
            for spent, path in trl_arm.saved:
                t = make_team(single_topology(), **greedy)
                t.adapters = {"adder": Adapter(name=f"trl@{path.name}", path=str(path))}
                trl_arm.final = await held_out(t, heldout, engine, path.name)
                trl_arm.curve.append((spent, trl_arm.final.accuracy))
            say(f"  single+trl: held-out {trl_arm.final.accuracy if trl_arm.final else float('nan'):.3f}")
            arms["single+trl"] = trl_arm
            if trl_arm.saved:
                last = trl_arm.saved[-1][1]
                await sc3("single+trl sc:3", Adapter(name=f"trl@{last.name}", path=str(last)))
        if "team+roles" in args.arms:
            trainer = RoleGRPOTrainer(
                make_team(team_topology()), train, engine, roles_cfg, heldout=heldout, out=out / "roles"
            )
            await trainer.publish()
            arm = Arm("team+roles")

            async def roles_eval(tag: str) -> ag.Metrics:
                return await held_out(
                    trainer.rollout_team(temperature=0.0, logprobs=False), heldout, engine, tag
                )

            await drive(arm, trainer.train_step, roles_eval, args.minutes, args.eval_points, say)
            arms[arm.name] = arm
        if "team+graph" in args.arms:
            graph = GraphGRPOTrainer(
                team_topology(), train, engine, graph_cfg, make_team=make_team, out=out / "graph"
            )
            arm = Arm("team+graph")

            async def graph_eval(tag: str) -> ag.Metrics:
                return await held_out(make_team(graph.pruned(), **greedy), heldout, engine, tag)

            await drive(arm, graph.train_step, graph_eval, args.minutes, args.eval_points, say)
            arm.extra["edges"] = graph.probabilities()
            arm.extra["pruned_edges"] = [f"{u}->{v}" for u, v in graph.pruned().edges_of("spatial")]
            graph.finish()
            arms[arm.name] = arm
        if "team+joint" in args.arms:
            joint = JointTrainer(
                team_topology(),
                train,
                engine,
                JointConfig(steps=100_000, graph=graph_cfg, roles=roles_cfg),
                make_team=make_team,
                heldout=heldout,
                out=out / "joint",
            )
            await joint.roles.publish()
            arm = Arm("team+joint")

            async def joint_eval(tag: str) -> ag.Metrics:
                t = joint.roles.rollout_team(
                    temperature=0.0, logprobs=False, team=make_team(joint.graph.pruned())
                )
                return await held_out(t, heldout, engine, tag)

            await drive(arm, joint.train_step, joint_eval, args.minutes, args.eval_points, say)
            arm.extra["edges"] = joint.graph.probabilities()
            arm.extra["pruned_edges"] = [f"{u}->{v}" for u, v in joint.graph.pruned().edges_of("spatial")]
            arms[arm.name] = arm
    rows = [a.row() for a in arms.values() if a.final is not None]
    plot(rows, Path(args.plot), args)
    return {"rows": rows, "heldout_problems": len(heldout), "seed": args.seed, "plot": str(args.plot)}


def plot(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        xs = [x for x, _ in r["curve"]]
        ys = [y for _, y in r["curve"]]
        if r["arm"] in ("single", "team") or "sc:3" in r["arm"]:
            ax.axhline(r["accuracy"], ls=":", lw=1, color="grey" if "single" in r["arm"] else "black")
            ax.annotate(r["arm"], (args.minutes, r["accuracy"]), fontsize=7, ha="right", va="bottom")
            continue
        start = 0 if r["arm"].startswith("team+") else None
        base = next((b["accuracy"] for b in rows if b["arm"] == ("team" if start == 0 else "single")), None)
        if base is not None:
            xs, ys = [0.0, *xs], [base, *ys]
        ax.plot(xs, ys, marker="o", label=r["arm"])
    ax.set_xlabel("minutes of training (evaluations excluded)")
    ax.set_ylabel(f"held-out accuracy ({args.heldout} problems, greedy)")
    ax.set_title(f"same training budget per arm, embedded model on vLLM (seed {args.seed})", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per training arm")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--eval-points", type=int, default=2, help="held-out evaluations per training arm")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--problems-per-step", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4, help="LoRA learning rate (TRL and role GRPO)")
    ap.add_argument("--graph-lr", type=float, default=0.2, help="edge-logit learning rate")
    ap.add_argument("--token-cost", type=float, default=0.5, help="graph GRPO: reward −= λ · tokens / 1000")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--sc-temperature", type=float, default=0.7)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/compare-training")
    ap.add_argument("--plot", default="docs/img/training_arms.png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad or args.minutes <= 0 or args.eval_points < 1 or args.heldout < 1:
        print(
            f"error: --arms must be among {', '.join(ARMS)} (got {', '.join(bad) or 'ok'}); "
            "--minutes > 0, --eval-points ≥ 1, --heldout ≥ 1",
            file=sys.stderr,
        )
        raise SystemExit(2)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        summary = asyncio.run(run(args, say))
    except ag.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    head = f"{'arm':<18} {'accuracy':>8} {'95% CI':>15} {'minutes':>8} {'tokens':>7} {'steps':>6}"
    print(head)
    for r in summary["rows"]:
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        print(
            f"{r['arm']:<18} {r['accuracy']:>8.3f} {ci:>15} {r['minutes']:>8.1f} "
            f"{r['tokens_per_problem']:>7.0f} {r['steps']:>6}"
        )
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
