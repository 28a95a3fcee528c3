"""Label-free role GRPO: consensus rewards with no gold in training, against gold rewards, equal steps.

Both arms run ``examples/train_roles_arith.py`` (the adder alone, "What is a + b?", the embedded
model on the in-process vLLM engine) with the same seeds, steps, problems and hyper-parameters; only
``--reward`` differs. Under ``consensus`` the training problems carry no answer at all — each
problem's pseudo-label is the plurality answer of its G rollouts, ties give no signal — and the
example scores those labels against answers the trainer never sees. Held-out problems (which drive
the rollback guard) and test problems (only reported) have gold in both arms.

    python examples/label_free_arith.py --seeds 0,1 --steps 15 --json

Each run's summary is kept in ``OUT-REWARD-SEED/summary.json``; a run whose summary exists is read,
not run again, so an interrupted comparison continues where it stopped. ``--consensus-min-share S``
labels only problems whose plurality has at least S of the G votes; its consensus runs go to
``OUT-consensus-minS-SEED`` and the gold runs of the same OUT are reused. ``--max-operand 9`` draws
one-digit sums, where the base model's plurality of 8 samples is right 57% of the time against 31%
on the default 2..30 (give such runs an OUT of their own).

With ``--json`` the last line is one JSON object: ``consensus_min_share``, ``rows`` (per arm:
``reward``, ``test_before``, ``test_final``, ``gain``, ``test_final_ci95`` over every seed's test
problems, ``label_accuracy`` (mean over steps and seeds; consensus only), ``labelled``,
``seeds``), ``gain_ratio`` (consensus gain / gold gain), ``target_met`` (gain_ratio ≥ 0.5),
``runs`` (every run's summary) and ``plot``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentgraph.core.stats import wilson
from examples import train_roles_arith

REWARDS = ("gold", "consensus")


def one_run(args: argparse.Namespace, reward: str, seed: int) -> dict[str, Any]:
    share = args.consensus_min_share if reward == "consensus" else 0.0
    # a thresholded consensus arm is a run of its own; the gold arm is the same run whatever it is
    out = Path(f"{args.out}-{reward}{f'-min{share:g}' if share else ''}-{seed}")
    saved = out / "summary.json"
    if saved.is_file():
        summary: dict[str, Any] = json.loads(saved.read_text())
        return summary
    argv = [
        "--agents", "1", "--steps", str(args.steps), "--minutes", str(args.minutes),
        "--problems-per-step", str(args.problems_per_step), "--group", str(args.group),
        "--lr", str(args.lr), "--eval-every", str(args.eval_every), "--heldout", str(args.heldout),
        "--test", str(args.test), "--reward", reward, "--seed", str(seed), "--out", str(out), "--json",
        "--max-operand", str(args.max_operand),
    ]  # fmt: skip
    if share:
        argv += ["--consensus-min-share", str(share)]
    summary = train_roles_arith.main(argv)
    saved.write_text(json.dumps(summary))
    return summary


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def rows_of(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for reward in REWARDS:
        mine = [r for r in runs if r["reward"] == reward]
        before = [r["test_curve"][0][1] for r in mine]
        final = [r["test_curve"][-1][1] for r in mine]
        n = sum(r["test_problems"] for r in mine)
        right = round(sum(f * r["test_problems"] for f, r in zip(final, mine, strict=True)))
        labels = [a for r in mine for a in r["label_accuracy"] if a is not None]
        rows.append(
            {
                "reward": reward,
                "seeds": [r["seed"] for r in mine],
                "test_before": mean(before),
                "test_final": mean(final),
                "gain": (mean(final) or 0.0) - (mean(before) or 0.0),
                "test_final_ci95": list(wilson(right, n)) if n else None,
                "label_accuracy": mean(labels),
                "labelled": mean([x for r in mine for x in r["labelled"]]) if reward == "consensus" else 1.0,
                "rollbacks": [r["rollbacks"] for r in mine],
            }
        )
    return rows


def arm(reward: str, min_share: float) -> str:
    return f"{reward} (share ≥ {min_share:g})" if reward == "consensus" and min_share else reward


def plot(runs: list[dict[str, Any]], path: Path, min_share: float = 0.0) -> None:
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    colors = {"gold": "tab:blue", "consensus": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    seeds = sorted({r["seed"] for r in runs})
    for r in runs:
        pts = r["test_curve"]
        ax.plot(
            [s for s, _ in pts], [a for _, a in pts], marker="o", color=colors[r["reward"]],
            ls=styles[seeds.index(r["seed"]) % len(styles)],
            label=f"{arm(r['reward'], min_share)}, seed {r['seed']}",
        )  # fmt: skip
    # Per-step label accuracy is over 2 problems, so one seed's line is 0/0.5/1 noise; the mean over
    # seeds (steps without any label left out) is what shows whether consensus labels are any good.
    cons = [r for r in runs if r["reward"] == "consensus"]
    if cons:
        n = max(len(r["label_accuracy"]) for r in cons)
        steps = list(range(1, n + 1))
        for key, label, ls in (
            ("label_accuracy", "pseudo-label accuracy", "-"),
            ("labelled", "share labelled", ":"),
        ):
            means = []
            for i in range(n):
                vals = [r[key][i] for r in cons if i < len(r[key]) and r[key][i] is not None]
                means.append(sum(vals) / len(vals) if vals else float("nan"))
            bx.plot(
                steps,
                means,
                ls=ls,
                marker=".",
                color="tab:orange",
                label=f"{label} (mean of {len(cons)} seeds)",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy (200 problems, greedy)")
    ax.set_title(f"role GRPO on a + b: gold vs {arm('consensus', min_share)} rewards", fontsize=9)
    ax.legend(fontsize=7)
    bx.set_xlabel("step")
    bx.set_ylim(-0.05, 1.05)
    bx.set_title("consensus arm: its labels against the hidden gold", fontsize=9)
    bx.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds, each run in both arms")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--minutes", type=float, default=60.0, help="time limit of each run")
    ap.add_argument("--problems-per-step", type=int, default=2)
    ap.add_argument("--group", type=int, default=8, help="G: rollouts per problem (the consensus voters)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--heldout", type=int, default=100, help="held-out problems (with gold; drive the guard)")
    ap.add_argument("--test", type=int, default=200, help="test problems (with gold; only reported)")
    ap.add_argument(
        "--consensus-min-share",
        type=float,
        default=0.0,
        help="the consensus arm's label threshold (RoleGRPOConfig.consensus_min_share); 0: any plurality",
    )
    ap.add_argument(
        "--max-operand",
        type=int,
        default=30,
        help="operands from 2..this (9: one-digit sums, where the plurality is right more often)",
    )
    ap.add_argument("--out", default="runs/labelfree", help="runs go to OUT-REWARD[-minSHARE]-SEED")
    ap.add_argument("--plot", type=Path, default=Path("docs/img/label_free_arith.png"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"error: --seeds: {args.seeds!r} is not a list of integers (use e.g. 0,1)", file=sys.stderr)
        raise SystemExit(2) from None
    runs = [one_run(args, reward, seed) for seed in seeds for reward in REWARDS]
    rows = rows_of(runs)
    gold, consensus = rows
    ratio = consensus["gain"] / gold["gain"] if gold["gain"] > 0 else None
    plot(runs, args.plot, args.consensus_min_share)
    result = {
        "consensus_min_share": args.consensus_min_share,
        "rows": rows,
        "gain_ratio": ratio,
        "target_met": ratio is not None and ratio >= 0.5,
        "runs": runs,
        "plot": str(args.plot),
    }
    for r in rows:
        print(
            f"{r['reward']:>9}: test {r['test_before']:.3f} → {r['test_final']:.3f} (gain {r['gain']:+.3f}); "
            f"pseudo-label accuracy {r['label_accuracy']}"
        )
    print(f"consensus gain / gold gain: {ratio}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
