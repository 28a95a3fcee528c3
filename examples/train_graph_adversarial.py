"""GPTSwarm's adversarial setting, learned with graph GRPO on the scripted backend.

k truthful agents (right with probability p; a wrong truthful answer is uniform over the other
options) and k adversaries (always the same wrong option) feed a plurality-vote decision node; the
candidate edges are every agent → decision and every agent → later agent (adversaries first). With
``--persuadable`` a truthful agent answers the plurality of its own answer and its predecessors', so
adversary → truthful edges must be cut too. Ties are broken at random (seeded).

    python examples/train_graph_adversarial.py --seeds 5 --json
    python examples/train_graph_adversarial.py --persuadable --seeds 5 --json
    python examples/train_graph_adversarial.py --baseline none --seeds 5 --json   # GPTSwarm's REINFORCE
    python examples/train_graph_adversarial.py --k 5 --adversaries 0 --p 1 --verbose 60 \
        --token-cost 0.5 --json                                                    # the token-cost setting
    python examples/train_graph_adversarial.py --grid --jobs 2 --json             # the robustness grid

``--grid`` runs the persuadable setting for every team of ``GRID_TEAMS`` × accuracy of ``GRID_P``
(``--seeds`` seeds each, default 5 there) and reports per setting the mean and worst-seed pruned
accuracy against truthful-only and the iterations to converge; its JSON has ``rows`` (one per
setting: ``truthful``, ``adversaries``, ``p``, ``accuracy_pruned_mean``, ``accuracy_pruned_worst``,
``accuracy_truthful_only``, ``worst_gap``, ``iterations_to_converge_max``, ``seeds``) and
``worst_gap`` over the grid.

With ``--json`` the last line is one JSON object: ``p_adversary_to_decision``,
``p_truthful_to_decision``, ``p_adversary_to_truthful``, ``accuracy_pruned``,
``accuracy_truthful_only``, ``accuracy_full``, ``tokens_pruned``, ``tokens_full`` (means over seeds)
and ``per_seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.eval.datasets import Problem
from agentgraph.train import GraphGRPOConfig, GraphGRPOTrainer

OPTIONS = "ABCD"
BOXED = re.compile(r"\\boxed\{([A-D])\}")


def make_problems(n: int, seed: int, prefix: str) -> tuple[list[Problem], dict[str, str]]:
    rng = random.Random(seed)
    problems = [
        Problem(
            id=f"{prefix}{i}",
            question=f"{prefix} question {i}: which option is right?",
            answer=rng.choice(OPTIONS),
        )
        for i in range(n)
    ]
    return problems, {p.question: p.answer for p in problems}


def plurality(votes: list[str], rng: random.Random) -> str | None:
    if not votes:
        return None
    counts = Counter(votes)
    best = max(counts.values())
    return rng.choice(sorted(v for v, c in counts.items() if c == best))


def peer_answers(call: ScriptedCall) -> list[str]:
    return BOXED.findall(call.request.messages[-1].content)


def make_backend(gold: dict[str, str], p: float, persuadable: bool, seed: int, verbose: int = 0) -> Scripted:
    reasoning = " ".join(["because"] * verbose)

    def wrong(problem: str) -> str:
        return OPTIONS[(OPTIONS.index(gold[problem]) + 1) % 4]

    def agent(call: ScriptedCall) -> str:
        if call.agent == "decision":
            choice = plurality(peer_answers(call), call.rng)
            return "no input, no answer" if choice is None else f"\\boxed{{{choice}}}"
        if call.agent.startswith("x"):
            return f"\\boxed{{{wrong(call.problem)}}}"
        right = gold[call.problem]
        own = right if call.rng.random() < p else call.rng.choice([o for o in OPTIONS if o != right])
        if persuadable:
            own = plurality([own, *peer_answers(call)], call.rng) or own
        return f"{reasoning} I think it is \\boxed{{{own}}}".strip()

    return Scripted(default=agent, seed=seed)


def base_topology(truthful: int, adversaries: int) -> ag.Topology:
    g = ag.Topology(name=f"adversarial:{truthful}+{adversaries}")
    agents = [f"x{i}" for i in range(adversaries)] + [f"t{i}" for i in range(truthful)]
    for a in agents:
        g.add_agent(a, "solver")
    g.add_agent("decision", "manager", root=True)
    for i, u in enumerate(agents):
        for v in agents[i + 1 :]:
            g.add_spatial(u, v, logit=0.0)
        g.add_spatial(u, "decision", logit=0.0)
    return g


def team(g: ag.Topology) -> ag.Team:
    return ag.Team(g, rounds=1, decision="tree_root")


async def accuracy(g: ag.Topology, problems: list[Problem], backend: Scripted) -> tuple[float, float]:
    rs = await ag.solve_many(
        team(g),
        [p.question for p in problems],
        backend,
        golds=[p.answer for p in problems],
        session_ids=[p.id for p in problems],
    )
    return float(np.mean([bool(r.correct) for r in rs])), float(np.mean([r.usage.total_tokens for r in rs]))


def only(base: ag.Topology, keep: Callable[[tuple[str, str, str]], bool]) -> ag.Topology:
    return base.keep_edges(e for e in base.edges(keys=True) if keep(e))


async def one_seed(args: argparse.Namespace, seed: int) -> dict[str, float]:
    base = base_topology(args.k, args.adversaries)
    # enough training problems for the steps, the selection and its held-out pick, each drawn apart
    holdout = 3 * args.select if args.holdout is None else args.holdout  # the config's own default
    n_train = max(args.iterations * args.problems_per_step, args.select + holdout + 1)
    train, gold = make_problems(n_train, seed, "train")
    evals, gold_eval = make_problems(args.eval_problems, seed + 10_000, "eval")
    gold.update(gold_eval)
    backend = make_backend(gold, args.p, args.persuadable, seed, args.verbose)
    cfg = GraphGRPOConfig(
        group_size=args.group,
        steps=args.iterations,
        problems_per_step=args.problems_per_step,
        learning_rate=args.lr,
        token_cost=args.token_cost,
        baseline=args.baseline,
        seed=seed,
        prune_threshold=0.5,
        agent_dropout=args.agent_dropout,
        fixed_agents=("decision",),
        entropy_coef=args.entropy,
        explore=args.explore,
        credit=args.credit,
        select_problems=args.select,
        select_holdout=args.holdout,
        select_se=args.select_se,
    )
    trainer = GraphGRPOTrainer(base, train, backend, cfg, make_team=team)
    pruned = await trainer.train()
    probs = trainer.probabilities()

    def mean_p(pred: Callable[[str], bool]) -> float:
        vals = [v for k, v in probs.items() if pred(k)]
        return float(np.mean(vals)) if vals else float("nan")

    truthful_only = only(base, lambda e: e[0].startswith("t") and e[1] == "decision")
    acc_p, tok_p = await accuracy(pruned, evals, backend)
    acc_t, tok_t = await accuracy(truthful_only, evals, backend)
    acc_f, tok_f = await accuracy(base, evals, backend)
    return {
        "seed": seed,
        "p_adversary_to_decision": mean_p(lambda k: k.startswith("x") and "->decision" in k),
        "p_truthful_to_decision": mean_p(lambda k: k.startswith("t") and "->decision" in k),
        "p_adversary_to_truthful": mean_p(lambda k: k.startswith("x") and "->t" in k),
        "accuracy_pruned": acc_p,
        "accuracy_truthful_only": acc_t,
        "accuracy_full": acc_f,
        "tokens_pruned": tok_p,
        "tokens_truthful_only": tok_t,
        "tokens_full": tok_f,
        "iterations_to_converge": converged_at(trainer),
        "edges_pruned": len(pruned.edges_of("spatial")),
        "edges_full": len(base.edges_of("spatial")),
    }


def converged_at(trainer: GraphGRPOTrainer) -> int:
    """The first step from which the thresholded edge set (p ≥ 0.5) no longer changes."""
    kept = [frozenset(k for k, p in e.probabilities.items() if p >= 0.5) for e in trainer.log]
    at = len(kept)
    while at > 0 and kept[at - 1] == kept[-1]:
        at -= 1
    return at + 1


GRID_TEAMS = ((3, 1), (3, 3), (5, 3))  # (truthful, adversaries): 4, 6 and 8 agents; 25-50% adversaries
GRID_P = (0.6, 0.8)


def parse_setting(text: str) -> tuple[int, int, float]:
    """``"5+3:0.6"`` → (5 truthful, 3 adversaries, p 0.6)."""
    try:
        team_part, p = text.strip().split(":")
        k, x = team_part.split("+")
        return int(k), int(x), float(p)
    except ValueError:
        print(f"error: --settings: {text!r} is not TRUTHFUL+ADVERSARIES:P (e.g. 5+3:0.6)", file=sys.stderr)
        raise SystemExit(2) from None


def _seed_job(job: tuple[argparse.Namespace, int]) -> dict[str, float]:
    return asyncio.run(one_seed(*job))


def grid(args: argparse.Namespace) -> dict[str, object]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    settings = [(k, x, p) for k, x in GRID_TEAMS for p in GRID_P]
    if args.settings:
        settings = [parse_setting(s) for s in args.settings.split(",")]
    jobs = []
    for k, x, p in settings:
        a = argparse.Namespace(**{**vars(args), "k": k, "adversaries": x, "p": p, "persuadable": True})
        jobs += [(a, args.seed + s) for s in range(args.seeds)]
    results: list[dict[str, float]] = [{} for _ in jobs]
    t0 = time.perf_counter()
    # The grid takes tens of minutes: one line per finished seed on stderr keeps stdout's table and
    # JSON clean. Largest teams first, so the slowest jobs do not start last and idle the pool.
    order = sorted(range(len(jobs)), key=lambda i: -(jobs[i][0].k + jobs[i][0].adversaries))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_seed_job, jobs[i]): i for i in order}
        for done, fut in enumerate(as_completed(futures), 1):
            i = futures[fut]
            results[i] = r = fut.result()
            a = jobs[i][0]
            print(
                f"[{done}/{len(jobs)} {time.perf_counter() - t0:6.0f}s] {a.k}t+{a.adversaries}x p={a.p}"
                f" seed {jobs[i][1]}: pruned {r['accuracy_pruned']:.3f},"
                f" truthful-only {r['accuracy_truthful_only']:.3f}",
                file=sys.stderr,
                flush=True,
            )
    rows = []
    for i, (k, x, p) in enumerate(settings):
        rs = results[i * args.seeds : (i + 1) * args.seeds]
        gaps = [r["accuracy_truthful_only"] - r["accuracy_pruned"] for r in rs]
        worst = int(np.argmax(gaps))
        rows.append(
            {
                "truthful": k,
                "adversaries": x,
                "p": p,
                "accuracy_pruned_mean": float(np.mean([r["accuracy_pruned"] for r in rs])),
                "accuracy_pruned_worst": rs[worst]["accuracy_pruned"],
                "accuracy_truthful_only": float(np.mean([r["accuracy_truthful_only"] for r in rs])),
                "accuracy_full": float(np.mean([r["accuracy_full"] for r in rs])),
                "worst_gap": gaps[worst],
                "worst_seed": rs[worst]["seed"],
                "iterations_to_converge_mean": float(np.mean([r["iterations_to_converge"] for r in rs])),
                "iterations_to_converge_max": max(r["iterations_to_converge"] for r in rs),
                "edges_pruned_mean": float(np.mean([r["edges_pruned"] for r in rs])),
                "tokens_pruned_mean": float(np.mean([r["tokens_pruned"] for r in rs])),
                "tokens_truthful_only": float(np.mean([r["tokens_truthful_only"] for r in rs])),
                "seeds": rs,
            }
        )
    cols = ("pruned", "worst", "truthful", "full", "gap", "iters")
    print(f"{'team':>9} {'p':>4} " + " ".join(f"{c:>8}" for c in cols))
    for r in rows:
        print(
            f"{r['truthful']}t+{r['adversaries']}x".rjust(9)
            + f" {r['p']:>4} {r['accuracy_pruned_mean']:>8.3f} {r['accuracy_pruned_worst']:>8.3f}"
            f" {r['accuracy_truthful_only']:>8.3f} {r['accuracy_full']:>8.3f} {r['worst_gap']:>8.3f}"
            f" {r['iterations_to_converge_max']:>8}"
        )
    return {"rows": rows, "worst_gap": max(float(r["worst_gap"]) for r in rows)}  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=3, help="truthful agents")
    ap.add_argument("--adversaries", type=int, default=None, help="adversaries (default: k)")
    ap.add_argument("--p", type=float, default=0.8, help="probability a truthful agent is right")
    ap.add_argument("--persuadable", action="store_true")
    d = GraphGRPOConfig()
    ap.add_argument("--iterations", type=int, default=d.steps)
    ap.add_argument("--group", type=int, default=d.group_size)
    ap.add_argument("--problems-per-step", type=int, default=d.problems_per_step)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--token-cost", type=float, default=0.0)
    ap.add_argument("--verbose", type=int, default=0, help="words of reasoning a truthful agent writes")
    ap.add_argument("--agent-dropout", action="store_true", help="also learn per-agent keep logits")
    ap.add_argument(
        "--select", type=int, default=d.select_problems, help="choose the final graph on this many problems"
    )
    ap.add_argument(
        "--holdout",
        type=int,
        default=d.select_holdout,
        help="judge the selection's finalists on this many further problems (0: the search's pick; "
        "default: 3 × --select)",
    )
    ap.add_argument(
        "--select-se",
        type=float,
        default=d.select_se,
        help="an edge must change the selection reward by this many standard errors to count",
    )
    ap.add_argument("--entropy", type=float, default=0.0, help="entropy bonus on the keep-probabilities")
    ap.add_argument(
        "--explore", type=float, default=d.explore, help="ε: edges sampled with ε + (1 − 2ε)·p while learning"
    )
    ap.add_argument(
        "--credit",
        choices=["session", "leave-one-out"],
        default=d.credit,
        help="edge credit: the graph's outcome, or the difference reward of the agent the edge changes",
    )
    ap.add_argument(
        "--settings",
        default=None,
        help="--grid: only these settings, e.g. 3+3:0.6,5+3:0.6 (truthful+adversaries:p); default all",
    )
    ap.add_argument("--baseline", choices=["group", "none"], default="group")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 1; 5 with --grid)")
    ap.add_argument("--grid", action="store_true", help="the robustness grid (persuadable)")
    ap.add_argument("--jobs", type=int, default=1, help="processes for --grid")
    ap.add_argument("--eval-problems", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.adversaries is None:
        args.adversaries = args.k
    if args.k < 1 or args.adversaries < 0 or not 0 <= args.p <= 1 or args.iterations < 1 or args.group < 2:
        print("error: need k ≥ 1, adversaries ≥ 0, 0 ≤ p ≤ 1, iterations ≥ 1, group ≥ 2", file=sys.stderr)
        return 2
    if args.seeds is None:
        args.seeds = 5 if args.grid else 1
    t0 = time.perf_counter()
    if args.grid:
        out = grid(args)
        out.update(seconds=round(time.perf_counter() - t0, 1), settings=vars(args))
        if args.json:
            print(json.dumps(out))
        return 0
    rows = [asyncio.run(one_seed(args, args.seed + s)) for s in range(args.seeds)]
    keys = [k for k in rows[0] if k != "seed"]
    summary: dict[str, object] = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    print(f"{'seed':>4} " + " ".join(f"{k[:22]:>22}" for k in keys))
    for r in rows:
        print(f"{r['seed']:>4} " + " ".join(f"{r[k]:>22.3f}" for k in keys))
    print("mean " + " ".join(f"{summary[k]:>22.3f}" for k in keys))
    summary.update(per_seed=rows, seconds=round(time.perf_counter() - t0, 1), settings=vars(args))
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
