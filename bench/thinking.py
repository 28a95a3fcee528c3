"""The cost curve of thinking: one team at thinking budgets 0 / 64 / 256 tokens.

    python bench/thinking.py --json

The same team (``full:3``, 2 rounds, majority vote, ``share: final``) on the same generated
arithmetic problems, once per thinking budget. On ``--backend vllm`` (default) the embedded model
runs behind ``examples/chat_templates/chatml-think.jinja``, a ChatML template whose generation
prompt opens ``<think>`` as an R1 distill's does; SmolLM2-135M never closes the block by itself, so
every budget is spent and the turn is *forced* to conclude (close marker + the role's cue
"The final answer is \\boxed{" + ``--answer-tokens`` tokens) — which is what budget forcing is for.
``--backend scripted`` runs scripted agents that think 300 words and then conclude (for tests; the
accuracy is then that of the script).

Reported per budget: accuracy (95% Wilson interval), thinking and answer tokens per problem (exact:
the two requests of each turn split them), prompt tokens per problem, wall time. With ``--json`` the
last line is one JSON object whose ``rows`` each hold ``budget``, ``accuracy``, ``ci95``,
``thinking_tokens_per_problem``, ``answer_tokens_per_problem``, ``prompt_tokens_per_problem``,
``wall_s`` and ``n``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentgraph as ag
from agentgraph.backends import VLLM, Backend, Scripted, ScriptedCall
from agentgraph.core.errors import ConfigError
from agentgraph.core.thinking import ThinkFormat
from agentgraph.eval.datasets import load_dataset
from agentgraph.eval.metrics import compute_metrics

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "chat_templates" / "chatml-think.jinja"


def scripted_thinker(call: ScriptedCall) -> str:
    m = re.search(r"(-?\d+) ([+-]) (-?\d+)", call.problem)
    a, op, b = (int(m.group(1)), m.group(2), int(m.group(3))) if m else (0, "+", 0)
    value = a + b if op == "+" else a - b
    if call.prefix.endswith("\\boxed{"):
        return f"{value}}}."
    return "Let me think. " + "hmm " * 300 + f"</think> \\boxed{{{value}}}"


def make_backend(name: str, seed: int) -> Backend:
    if name == "vllm":
        return VLLM(seed=seed, chat_template=str(TEMPLATE), max_model_len=2048, kv_cache_gib=2)
    if name == "scripted":
        return Scripted(
            default=scripted_thinker, seed=seed, think_format=ThinkFormat(opened_by_template=True)
        )
    raise ConfigError("backend", f"{name!r} is not vllm or scripted", "use --backend vllm|scripted")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    budgets = [int(b) for b in args.budgets.split(",")]
    problems = load_dataset(f"arith:ops=+-,digits=2,n={args.limit},seed={args.seed}")
    rows = []
    async with make_backend(args.backend, args.seed) as backend:
        for budget in budgets:
            sampling = ag.SamplingOverrides(thinking_budget=budget, answer_tokens=args.answer_tokens)
            team = ag.Team(ag.full(3), rounds=2, sampling=sampling)
            t0 = time.perf_counter()
            results = await ag.solve_many(
                team, [p.question for p in problems], backend, golds=[p.answer for p in problems]
            )
            wall = time.perf_counter() - t0
            m = compute_metrics(f"budget {budget}", results, wall)
            forced = sum(t.forced_tokens > 0 for r in results for t in r.turns)
            turns = sum(len(r.turns) for r in results)
            rows.append(
                {
                    "budget": budget,
                    "accuracy": m.accuracy,
                    "ci95": [round(m.ci95_low, 3), round(m.ci95_high, 3)],
                    "thinking_tokens_per_problem": m.thinking_tokens_per_problem,
                    "answer_tokens_per_problem": m.answer_tokens_per_problem,
                    "prompt_tokens_per_problem": m.prompt_tokens_per_problem,
                    "forced_turns": f"{forced}/{turns}",
                    "unparseable": m.unparseable,
                    "wall_s": round(wall, 2),
                    "n": m.n,
                }
            )
            r = rows[-1]
            print(
                f"budget {budget:>4}: accuracy {m.accuracy:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
                f"thinking {m.thinking_tokens_per_problem:7.1f}  answer {m.answer_tokens_per_problem:6.1f}"
                f"  prompt {m.prompt_tokens_per_problem:8.1f} tokens/problem  forced {r['forced_turns']}"
                f"  {wall:6.1f} s",
                file=sys.stderr,
            )
    return {"backend": args.backend, "team": "full:3, 2 rounds, majority", "rows": rows}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="vllm", help="vllm (embedded model) | scripted")
    p.add_argument("--budgets", default="0,64,256", help="comma-separated thinking budgets")
    p.add_argument("--limit", type=int, default=20, help="problems")
    p.add_argument("--answer-tokens", type=int, default=16, help="tokens after the thinking")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    a = p.parse_args()
    try:
        out = asyncio.run(main(a))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if a.json:
        print(json.dumps(out))
