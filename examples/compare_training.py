"""What training buys, at the same wall-clock budget: the arms on the embedded model, one vLLM engine.

Two tasks (``--task``):

- ``add`` (the first comparison): "What is a + b?" (a, b in 2–30) with the short-answer cards of
  ``train_roles_arith.py``; the team is an adder ``a0`` and two checkers ``a1``, ``a2`` (edges a0→a1,
  a0→a2, a1→a2; majority vote of the three). One agent can solve it alone.
- ``multi`` (a task whose work splits): ``arith:operands=N`` over ``--ops`` (default 3 one-digit
  operands, ``+-``: "What is (3 + 8) - 4?"), left to right. The team is a chain of N − 1 agents, one
  role per position (``step1`` computes the first operation; ``stepK`` applies operation K to the
  running result it is shown); the last agent's answer decides (``tree_root``: it is marked root,
  so the decision survives a sampled graph without an edge, where ``chain_tail`` is refused). The
  single agent gets the whole problem, a card that lets it write out the steps, and as many
  completion tokens as the whole team (``(N − 1) × --max-tokens``).

The arms, each evaluated greedily on the same held-out problems:

- ``single``: the base single agent (no training), and its self-consistency row at the team's tokens
  (``sc:k``, k samples at ``--sc-temperature``, plurality vote; k = 3 on ``add``, and on ``multi``
  the base team's tokens per problem over the single's, rounded, at least 2);
- ``single+trl``: the single agent trained with TRL's own ``GRPOTrainer`` (LoRA, transformers
  generation: TRL's vLLM modes need CUDA), its saved adapters then served by the same vLLM engine;
- ``team``: the base team;
- ``team+roles``: role GRPO, one LoRA adapter per role;
- ``team+shared``: role GRPO with one adapter shared by every role (``shared_policy``): the
  specialisation ablation;
- ``team+graph``: graph GRPO on the team's edges, with a token cost (``add`` only by default: the
  ``multi`` chain's edges are its data flow);
- ``team+joint``: both from the same rollouts (``JointTrainer``).

Every training arm gets ``--minutes`` of training wall-clock (evaluations excluded; a step that
starts before the limit finishes). The held-out accuracy is measured at ``--eval-points`` equally
spaced marks of training time. ``--seeds 0,1`` runs the whole comparison once per seed (its own
training problems, held-out problems and engine seed), one after the other; ``--out``/seed-S.json
is rewritten as each arm ends, so an interruption loses only the arm running.

    python examples/compare_training.py --minutes 10 --json
    python examples/compare_training.py --task multi --minutes 5 --seeds 0,1 --json

With ``--json`` the last line is one JSON object with ``rows`` (each: ``arm``, ``seed``,
``accuracy``, ``ci95``, ``minutes``, ``tokens_per_problem``, ``steps``, ``curve`` = [[minutes,
accuracy], …]), ``arms`` (per arm over the seeds: ``accuracy`` = the mean, ``per_seed``, ``ci95``
= the Wilson interval of all seeds' held-out answers pooled, ``tokens_per_problem``),
``heldout_problems``, ``seeds``, ``task``, ``plot``; the plot (``--plot``, default
``docs/img/training_arms.png``, ``docs/img/training_arms_multi.png`` for ``multi``) shows held-out
accuracy against minutes of training.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM
from agentgraph.backends.base import Adapter
from agentgraph.core.answers import is_correct
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.core.stats import wilson
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem, arith
from agentgraph.eval.evaluation import evaluate
from agentgraph.roles.book import Role, RoleBook
from agentgraph.train import (
    GraphGRPOConfig,
    GraphGRPOTrainer,
    JointConfig,
    JointTrainer,
    RoleGRPOConfig,
    RoleGRPOTrainer,
)
from examples.train_roles_arith import ADDER, CHECKER, additions

ARMS = ("single", "single+trl", "team", "team+roles", "team+shared", "team+graph", "team+joint")
DEFAULT_ARMS = {
    "add": ("single", "single+trl", "team", "team+roles", "team+graph", "team+joint"),
    "multi": ("single", "single+trl", "team", "team+roles", "team+shared", "team+joint"),
}
SOLVER = Role(
    name="solver",
    system_prompt="You are a calculator.",
    instruction="Work left to right, one operation at a time; then give the final number in \\boxed{}.",
)


def step_role(k: int, last: bool) -> Role:
    """The chain's card for position ``k`` (1-based): the first does the first operation alone; each
    later one applies its own operation to the running result the one before it passed on."""
    if k == 1:
        what = "Compute just the first operation (the first two numbers)."
    elif last:
        what = "Apply the last operation to the running result."
    else:
        what = f"Apply operation {k} (operator {k} from the left) to the running result."
    return Role(
        name=f"step{k}",
        system_prompt="You are a calculator.",
        instruction=f"{what} Answer with just the number.",
        peer_header="Running result so far:",
        peer_template="{text}",
    )


def running_values(question: str) -> list[int]:
    """The running results of a left-to-right chain question, after each operation.

    Examples
    --------
    >>> running_values("What is ((3 + 8) - 4) * 2?")
    [11, 7, 14]
    """
    tokens = question.removeprefix("What is ").removesuffix("?").replace("(", "").replace(")", "").split()
    value, out = int(tokens[0]), []
    for op, b in zip(tokens[1::2], tokens[2::2], strict=True):
        value = value + int(b) if op == "+" else value - int(b) if op == "-" else value * int(b)
        out.append(value)
    return out


def step_reward(result: SessionResult) -> dict[str, float]:
    """The chain's per-step verifiable reward (``--team-reward step``): agent ``a{k}``'s answer
    against the running result after operation k + 1 — each agent is rewarded for its own step."""
    values = running_values(result.problem)
    return {
        t.id: float(is_correct(t.answer, str(values[int(t.agent.removeprefix("a"))])))
        for t in result.agent_turns()
    }


STEP_REWARD = "examples.compare_training:step_reward"


@dataclass
class Task:
    """What the arms are compared on: problems, cards, the single agent and the team."""

    name: str
    book: RoleBook
    single_role: Role
    agent_roles: tuple[str, ...]
    """the role of each team agent a0, a1, …; the last is the root"""
    decision: str
    agent_tokens: int
    single_tokens: int
    generate: Callable[[int, int], list[Problem]]
    edges: list[tuple[str, str]] = field(default_factory=list)

    def single_topology(self) -> ag.Topology:
        g = ag.Topology(name="single")
        g.add_agent("a0", self.single_role.name, root=True)
        return g

    def team_topology(self) -> ag.Topology:
        g = ag.Topology(name=f"{self.name} team")
        for i, role in enumerate(self.agent_roles):
            g.add_agent(f"a{i}", role, root=i == len(self.agent_roles) - 1)
        for u, v in self.edges:
            g.add_spatial(u, v, logit=0.0)
        return g

    @property
    def team_roles(self) -> tuple[str, ...]:
        """The roles trained: each agent role once, in order."""
        return tuple(dict.fromkeys(self.agent_roles))

    def team(self, g: ag.Topology, *, temperature: float = 1.0, max_tokens: int | None = None) -> ag.Team:
        single = len(g.agents) == 1
        t = ag.Team(g, rounds=1, decision="chain_tail" if single else self.decision, roles=self.book)
        cap = max_tokens or (self.single_tokens if single else self.agent_tokens)
        t.sampling = SamplingOverrides(temperature=temperature, max_tokens=cap)
        return t


def make_task(args: argparse.Namespace) -> Task:
    if args.task == "add":
        return Task(
            name="add", book=RoleBook([ADDER, CHECKER]), single_role=ADDER,
            agent_roles=("adder", "checker", "checker"), decision="majority",
            agent_tokens=args.max_tokens, single_tokens=args.max_tokens,
            generate=lambda n, seed: additions(n, seed=seed),
            edges=[("a0", "a1"), ("a0", "a2"), ("a1", "a2")],
        )  # fmt: skip
    k = args.operands - 1
    steps = [step_role(i + 1, last=i + 1 == k) for i in range(k)]
    return Task(
        name="multi", book=RoleBook([SOLVER, *steps]), single_role=SOLVER,
        agent_roles=tuple(r.name for r in steps), decision="tree_root", agent_tokens=args.max_tokens,
        single_tokens=k * args.max_tokens,
        generate=lambda n, seed: arith(
            ops=args.ops, digits=args.digits, n=n, seed=seed, operands=args.operands
        ),
        edges=[(f"a{i}", f"a{i + 1}") for i in range(k - 1)],
    )  # fmt: skip


class Arm:
    """One arm's figures: the curve of (training minutes, held-out accuracy) and the final eval."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed
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
            "seed": self.seed,
            "accuracy": m.accuracy,
            "correct": m.correct,
            "n": m.n,
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
            m = await measure(f"{arm.name}-{arm.seed}-{arm.steps}")
            arm.curve.append((spent, m.accuracy))
            arm.final = m
            say(f"  {arm.name}: {spent:5.1f} min, {arm.steps} steps, held-out {m.accuracy:.3f}")
    arm.minutes = spent


def train_trl(
    args: argparse.Namespace,
    task: Task,
    seed: int,
    train: list[Problem],
    out: Path,
    say: Callable[[str], None],
) -> Arm:
    """TRL's ``GRPOTrainer`` on the single agent for ``minutes``; adapters saved at the evaluation marks."""
    from transformers import TrainerCallback

    from examples.trl_adder import trl_adder_trainer

    arm = Arm("single+trl", seed)
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
        max_tokens=task.single_tokens,
        lr=args.lr,
        rank=args.rank,
        targets=RoleGRPOConfig().lora_targets,
        seed=seed,
        max_steps=100_000,  # the time budget stops it
        callbacks=[budget],
        role=task.single_role,
    )
    trainer.train()
    arm.minutes = budget.spent
    return arm


class Arms(dict[str, Arm]):
    """One seed's arms; each finished arm rewrites ``path`` (atomically), so a crash or an
    interruption later in the run loses nothing already measured."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def __setitem__(self, name: str, arm: Arm) -> None:
        super().__setitem__(name, arm)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([a.row() for a in self.values() if a.final is not None], indent=1))
        tmp.replace(self.path)


async def run_seed(args: argparse.Namespace, task: Task, seed: int, say: Callable[[str], None]) -> list[Arm]:
    """Every arm of ``args.arms`` for one seed (training problems, held-out problems, engine seed)."""
    train = task.generate(args.train, seed)
    heldout = task.generate(args.heldout, 10_000 + seed)
    out = Path(args.out) / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    arms = Arms(Path(args.out) / f"seed-{seed}.json")

    def roles_config(shared: bool) -> RoleGRPOConfig:
        return RoleGRPOConfig(
            train_roles=task.team_roles,
            shared_policy=shared,
            group_size=args.group,
            problems_per_step=args.problems_per_step,
            learning_rate=args.lr,
            max_completion_length=task.agent_tokens,
            lora_r=args.rank,
            eval_every=0,
            seed=seed,
            reward=team_reward,
        )

    team_reward = STEP_REWARD if args.team_reward == "step" else "gold"
    graph_cfg = GraphGRPOConfig(
        group_size=args.group,
        problems_per_step=args.problems_per_step,
        learning_rate=args.graph_lr,
        token_cost=args.token_cost,
        select_problems=0,
        seed=seed,
        reward=team_reward,
    )
    # before vLLM starts: both hold the model
    trl_arm = train_trl(args, task, seed, train, out, say) if "single+trl" in args.arms else None
    async with VLLM(
        enable_lora=True, max_lora_rank=args.rank, max_loras=4, max_model_len=512, seed=seed
    ) as engine:

        async def base(name: str, g: ag.Topology) -> None:
            arm = Arm(name, seed)
            arm.final = await held_out(task.team(g, temperature=0.0), heldout, engine, f"{name}-{seed}")
            arm.curve = [(0.0, arm.final.accuracy)]
            say(f"  {name}: held-out {arm.final.accuracy:.3f}")
            arms[name] = arm

        async def sc(name: str, k: int, adapter: Adapter | None) -> None:
            g = ag.Topology(name=f"sc:{k}")
            for i in range(k):
                g.add_agent(f"a{i}", task.single_role.name)
            t = ag.Team(g, rounds=1, decision="majority", roles=task.book)
            t.sampling = SamplingOverrides(temperature=args.sc_temperature, max_tokens=task.single_tokens)
            if adapter is not None:
                t.adapters = {task.single_role.name: adapter}
            arm = Arm(name, seed)
            arm.final = await held_out(t, heldout, engine, f"{name}-{seed}")
            say(f"  {name}: held-out {arm.final.accuracy:.3f}")
            arms[name] = arm

        if "single" in args.arms:
            await base("single", task.single_topology())
        if "team" in args.arms:
            await base("team", task.team_topology())
        if "single" in args.arms:
            k = 3
            if task.name == "multi" and "team" in args.arms:
                single_m, team_m = arms["single"].final, arms["team"].final
                assert single_m is not None and team_m is not None
                per = single_m.prompt_tokens_per_problem + single_m.completion_tokens_per_problem
                team_tokens = team_m.prompt_tokens_per_problem + team_m.completion_tokens_per_problem
                k = max(2, round(team_tokens / per))
            await sc(f"single sc:{k}", k, None)
        if trl_arm is not None:
            for spent, path in trl_arm.saved:
                t = task.team(task.single_topology(), temperature=0.0)
                t.adapters = {task.single_role.name: Adapter(name=f"trl{seed}@{path.name}", path=str(path))}
                trl_arm.final = await held_out(t, heldout, engine, f"{path.name}-{seed}")
                trl_arm.curve.append((spent, trl_arm.final.accuracy))
            say(f"  single+trl: held-out {trl_arm.final.accuracy if trl_arm.final else float('nan'):.3f}")
            arms["single+trl"] = trl_arm
            if trl_arm.saved and task.name == "add":  # the first comparison's extra row
                last = trl_arm.saved[-1][1]
                await sc("single+trl sc:3", 3, Adapter(name=f"trl{seed}@{last.name}", path=str(last)))
        for name, shared in (("team+roles", False), ("team+shared", True)):
            if name not in args.arms:
                continue
            trainer = RoleGRPOTrainer(
                task.team(task.team_topology()), train, engine, roles_config(shared), heldout=heldout,
                out=out / name.removeprefix("team+"),
            )  # fmt: skip
            await trainer.publish()
            arm = Arm(name, seed)

            async def roles_eval(tag: str, trainer: RoleGRPOTrainer = trainer) -> ag.Metrics:
                return await held_out(
                    trainer.rollout_team(temperature=0.0, logprobs=False), heldout, engine, tag
                )

            await drive(arm, trainer.train_step, roles_eval, args.minutes, args.eval_points, say)
            arms[arm.name] = arm
        if "team+graph" in args.arms:
            graph = GraphGRPOTrainer(
                task.team_topology(), train, engine, graph_cfg, make_team=task.team, out=out / "graph"
            )
            arm = Arm("team+graph", seed)

            async def graph_eval(tag: str) -> ag.Metrics:
                return await held_out(task.team(graph.pruned(), temperature=0.0), heldout, engine, tag)

            await drive(arm, graph.train_step, graph_eval, args.minutes, args.eval_points, say)
            arm.extra["edges"] = graph.probabilities()
            arm.extra["pruned_edges"] = [f"{u}->{v}" for u, v in graph.pruned().edges_of("spatial")]
            graph.finish()
            arms[arm.name] = arm
        if "team+joint" in args.arms:
            joint = JointTrainer(
                task.team_topology(),
                train,
                engine,
                JointConfig(steps=100_000, graph=graph_cfg, roles=roles_config(False)),
                make_team=task.team,
                heldout=heldout,
                out=out / "joint",
            )
            await joint.roles.publish()
            arm = Arm("team+joint", seed)

            async def joint_eval(tag: str) -> ag.Metrics:
                t = joint.roles.rollout_team(
                    temperature=0.0, logprobs=False, team=task.team(joint.graph.pruned())
                )
                return await held_out(t, heldout, engine, tag)

            await drive(arm, joint.train_step, joint_eval, args.minutes, args.eval_points, say)
            arm.extra["edges"] = joint.graph.probabilities()
            arm.extra["pruned_edges"] = [f"{u}->{v}" for u, v in joint.graph.pruned().edges_of("spatial")]
            arms[arm.name] = arm
    return [a for a in arms.values() if a.final is not None]


def pooled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm over the seeds: the mean accuracy, each seed's, and the Wilson interval of all pooled."""
    out = []
    for name in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == name]
        correct, n = sum(r["correct"] for r in mine), sum(r["n"] for r in mine)
        lo, hi = wilson(correct, n)
        out.append({
            "arm": name,
            "accuracy": round(sum(r["accuracy"] for r in mine) / len(mine), 4),
            "per_seed": [r["accuracy"] for r in mine],
            "ci95": [round(lo, 4), round(hi, 4)],
            "minutes": round(sum(r["minutes"] for r in mine) / len(mine), 2),
            "steps": [r["steps"] for r in mine],
            "tokens_per_problem": round(sum(r["tokens_per_problem"] for r in mine) / len(mine), 1),
        })  # fmt: skip
    return out


async def run(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    task = make_task(args)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        say(f"seed {seed}:")
        rows.extend(a.row() for a in await run_seed(args, task, seed, say))
    arms = pooled(rows)
    plot(rows, Path(args.plot), args)
    return {
        "task": args.task if args.task == "add" else f"arith:operands={args.operands},ops={args.ops}",
        "rows": rows,
        "arms": arms,
        "team_reward": args.team_reward,
        "heldout_problems": args.heldout,
        "seeds": args.seeds,
        "seed": args.seeds[0],
        "plot": str(args.plot),
    }


def plot(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    colours: dict[str, Any] = {}
    for r in rows:
        baseline = r["arm"] in ("single", "team") or "sc:" in r["arm"]
        if baseline:
            if r["seed"] == args.seeds[0]:
                mean = sum(b["accuracy"] for b in rows if b["arm"] == r["arm"]) / len(args.seeds)
                ax.axhline(mean, ls=":", lw=1, color="grey" if "single" in r["arm"] else "black")
                ax.annotate(r["arm"], (args.minutes, mean), fontsize=7, ha="right", va="bottom")
            continue
        start = "team" if r["arm"].startswith("team+") else "single"
        base = next((b["accuracy"] for b in rows if b["arm"] == start and b["seed"] == r["seed"]), None)
        xs = [x for x, _ in r["curve"]]
        ys = [y for _, y in r["curve"]]
        if base is not None:
            xs, ys = [0.0, *xs], [base, *ys]
        first = r["arm"] not in colours
        line = ax.plot(
            xs, ys, marker="o", ls="-" if r["seed"] == args.seeds[0] else "--",
            color=colours.get(r["arm"]), label=r["arm"] if first else None,
        )  # fmt: skip
        colours.setdefault(r["arm"], line[0].get_color())
    ax.set_xlabel("minutes of training (evaluations excluded)")
    ax.set_ylabel(f"held-out accuracy ({args.heldout} problems, greedy)")
    seeds = ", ".join(str(s) for s in args.seeds)
    what = "a + b" if args.task == "add" else f"{args.operands} operands ({args.ops})"
    ax.set_title(f"{what}: same training budget per arm, embedded model on vLLM (seeds {seeds}; "
                 "dashed: later seeds; dotted: base arms, mean)", fontsize=8)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="add", choices=["add", "multi"], help="a + b, or a chain of operations")
    ap.add_argument("--operands", type=int, default=3, help="multi: numbers per problem (3–9)")
    ap.add_argument("--ops", default="+-", help="multi: the operators drawn from")
    ap.add_argument("--digits", type=int, default=1, help="multi: digits per number")
    ap.add_argument(
        "--team-reward",
        default=None,
        choices=["gold", "step"],
        help="the team arms' reward: the final answer, or (multi) each agent's own step (multi's default)",
    )
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per training arm")
    ap.add_argument(
        "--arms", default=None, help=f"comma-separated subset of {', '.join(ARMS)} (default: the task's)"
    )
    ap.add_argument("--eval-points", type=int, default=2, help="held-out evaluations per training arm")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--problems-per-step", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4, help="LoRA learning rate (TRL and role GRPO)")
    ap.add_argument("--graph-lr", type=float, default=0.2, help="edge-logit learning rate")
    ap.add_argument("--token-cost", type=float, default=0.5, help="graph GRPO: reward −= λ · tokens / 1000")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument(
        "--max-tokens", type=int, default=12, help="per team agent (multi: the single gets the team's)"
    )
    ap.add_argument("--sc-temperature", type=float, default=0.7)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=200)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, run one after the other")
    ap.add_argument("--out", default="runs/compare-training")
    ap.add_argument("--plot", default=None, help="default docs/img/training_arms[_multi].png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.arms = [a.strip() for a in (args.arms or ",".join(DEFAULT_ARMS[args.task])).split(",") if a.strip()]
    args.plot = args.plot or (
        "docs/img/training_arms.png" if args.task == "add" else "docs/img/training_arms_multi.png"
    )
    args.team_reward = args.team_reward or ("step" if args.task == "multi" else "gold")
    if args.task == "add" and args.team_reward == "step":
        print("error: --team-reward step: a + b has one step; use gold", file=sys.stderr)
        raise SystemExit(2)
    bad = [a for a in args.arms if a not in ARMS]
    try:
        args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        args.seeds = []
    if bad or args.minutes <= 0 or args.eval_points < 1 or args.heldout < 1 or not args.seeds:
        print(
            f"error: --arms must be among {', '.join(ARMS)} (got {', '.join(bad) or 'ok'}); "
            "--minutes > 0, --eval-points ≥ 1, --heldout ≥ 1, --seeds a comma-separated list of integers",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.task == "multi" and not 3 <= args.operands <= 9:
        print(
            f"error: --operands {args.operands}: a chain needs 3 to 9 numbers (2 agents or more)",
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
    head = (
        f"{'arm':<18} {'accuracy':>8} {'per seed':>16} {'95% CI (pooled)':>16} {'minutes':>8} {'tokens':>7}"
    )
    print(head)
    for r in summary["arms"]:
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        per = " ".join(f"{a:.3f}" for a in r["per_seed"])
        print(
            f"{r['arm']:<18} {r['accuracy']:>8.3f} {per:>16} {ci:>16} {r['minutes']:>8.1f} "
            f"{r['tokens_per_problem']:>7.0f}"
        )
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
