"""Metrics of a set of finished sessions: accuracy with a 95% Wilson interval, maj@k over the agents'
last-round answers (whatever the decision rule), oracle (some agent right in the last round),
agreement (all agents gave the same parseable answer), per-agent and per-round accuracy, tokens per
problem (prompt/completion, by agent, round and edge), thinking and answer tokens per problem (by
agent and round: the completion tokens split at the end of the think block), session latency
p50/p95, tokens per solved problem, and sessions that failed (context overflow under
``fail-session``: counted wrong, never dropped from ``n``).

Over repeated samples: unbiased ``pass_at[k]`` and ``maj_at[k]`` over each session's last-round
answers (for ``sc:N`` these are N independent samples; for a debate, its agents' final answers).
Where the budget went (:mod:`agentgraph.eval.budget`): ``effects`` counts the problems on which the
compute beyond one sample ``helped``, ``hurt``, left the answer the ``same`` or ``changed`` it
(still wrong); ``stages`` counts the problems each cascade stage decided; ``tokens_p50``/``p95``
spread the tokens per problem; ``scores_parsed`` of ``score_turns`` grader turns gave a parseable
score.

Examples
--------
>>> wilson(8, 10)
(0.49016..., 0.94331...)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentgraph.core.answers import answer_key, is_correct
from agentgraph.core.errors import ConfigError
from agentgraph.core.stats import wilson
from agentgraph.engine.accounting import DEFAULT_MODEL
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.budget import EFFECTS, effect, sample_curves
from agentgraph.protocol.voting import vote


class Metrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str
    n: int
    correct: int
    accuracy: float
    ci95_low: float
    ci95_high: float
    maj_at_k: float
    oracle: float
    agreement: float
    unparseable: float
    per_agent_accuracy: dict[str, float]
    per_round_accuracy: dict[int, float]
    per_round_agent_accuracy: dict[int, float]
    prompt_tokens_per_problem: float
    completion_tokens_per_problem: float
    thinking_tokens_per_problem: float = 0.0
    answer_tokens_per_problem: float = 0.0
    thinking_tokens_by_agent: dict[str, float] = {}
    thinking_tokens_by_round: dict[int, float] = {}
    failed_sessions: int = 0
    tokens_by_agent: dict[str, float]
    tokens_by_model: dict[str, float] = {}
    per_model_accuracy: dict[str, float] = Field(
        {}, description="model → share of its agents' last-round answers that are right"
    )
    tokens_by_round: dict[int, float]
    tokens_by_edge: dict[str, float]
    tokens_per_solved: float | None
    latency_p50_s: float
    latency_p95_s: float
    errors: int
    wall_s: float = 0.0
    pass_at: dict[int, float] = {}
    maj_at: dict[int, float] = {}
    effects: dict[str, int] = {}
    stages: dict[int, int] = {}
    tokens_p50: float = 0.0
    tokens_p95: float = 0.0
    score_turns: int = 0
    scores_parsed: int = 0


def compute_metrics(team_name: str, results: Sequence[SessionResult], wall_s: float = 0.0) -> Metrics:
    n = len(results)
    if n == 0:
        raise ConfigError("results", "no finished sessions", "run at least one problem")
    correct = sum(1 for r in results if r.correct)
    lo, hi = wilson(correct, n)
    maj = oracle = agree = unparse = 0
    agent_right: dict[str, int] = defaultdict(int)
    round_right: dict[int, int] = defaultdict(int)
    round_agent_right: dict[int, list[float]] = defaultdict(list)
    by_agent: dict[str, float] = defaultdict(float)
    by_round: dict[int, float] = defaultdict(float)
    by_edge: dict[str, float] = defaultdict(float)
    think_agent: dict[str, float] = defaultdict(float)
    think_round: dict[int, float] = defaultdict(float)
    by_model: dict[str, float] = defaultdict(float)
    model_right: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        gold = r.gold or ""
        last = r.agent_turns()
        maj += bool(is_correct(vote(last, {}, r.session, "majority").answer, gold))
        oracle += any(is_correct(t.answer, gold) for t in last)
        keys = {answer_key(t.answer) for t in last}
        agree += len(keys) == 1 and None not in keys
        unparse += r.answer is None
        for t in last:
            agent_right[t.agent] += is_correct(t.answer, gold)
            model_right[t.model or DEFAULT_MODEL].append(is_correct(t.answer, gold))
        for m, u in r.usage_by_model.items():
            by_model[m] += u.total_tokens / n
        for rnd in range(r.rounds_run):
            turns = r.agent_turns(rnd)
            round_right[rnd] += bool(is_correct(vote(turns, {}, r.session, "majority").answer, gold))
            round_agent_right[rnd].append(sum(is_correct(t.answer, gold) for t in turns) / max(1, len(turns)))
        for a, u in r.usage_by_agent.items():
            by_agent[a] += u.total_tokens / n
            think_agent[a] += u.thinking_tokens / n
        for rnd, u in r.usage_by_round.items():
            by_round[rnd] += u.total_tokens / n
            think_round[rnd] += u.thinking_tokens / n
        for e, tok in r.tokens_by_edge.items():
            by_edge[e] += tok / n
    lat = np.array([r.wall_s for r in results])
    total_tokens = sum(r.usage.total_tokens for r in results)
    per_problem = np.array([r.usage.total_tokens for r in results])
    passes, majs = sample_curves(results)
    effects = dict.fromkeys(EFFECTS, 0)
    stages: dict[int, int] = defaultdict(int)
    for r in results:
        if r.gold is not None:
            effects[effect(r)] += 1
        if r.decision.stage is not None:
            stages[r.decision.stage] += 1
    return Metrics(
        team=team_name,
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci95_low=lo,
        ci95_high=hi,
        maj_at_k=maj / n,
        oracle=oracle / n,
        agreement=agree / n,
        unparseable=unparse / n,
        per_agent_accuracy={a: k / n for a, k in sorted(agent_right.items())},
        per_round_accuracy={rnd: k / n for rnd, k in sorted(round_right.items())},
        per_round_agent_accuracy={rnd: float(np.mean(v)) for rnd, v in sorted(round_agent_right.items())},
        prompt_tokens_per_problem=sum(r.usage.prompt_tokens for r in results) / n,
        completion_tokens_per_problem=sum(r.usage.completion_tokens for r in results) / n,
        thinking_tokens_per_problem=sum(r.usage.thinking_tokens for r in results) / n,
        answer_tokens_per_problem=sum(r.usage.answer_tokens for r in results) / n,
        thinking_tokens_by_agent=dict(think_agent),
        thinking_tokens_by_round=dict(sorted(think_round.items())),
        failed_sessions=sum(1 for r in results if r.failure is not None),
        tokens_by_agent=dict(by_agent),
        tokens_by_model=dict(by_model),
        per_model_accuracy={m: float(np.mean(v)) for m, v in sorted(model_right.items())},
        tokens_by_round=dict(sorted(by_round.items())),
        tokens_by_edge=dict(by_edge),
        tokens_per_solved=total_tokens / correct if correct else None,
        latency_p50_s=float(np.percentile(lat, 50)),
        latency_p95_s=float(np.percentile(lat, 95)),
        errors=sum(r.errors for r in results),
        wall_s=wall_s,
        pass_at=passes,
        maj_at=majs,
        effects=effects,
        stages=dict(sorted(stages.items())),
        score_turns=sum(1 for r in results for t in r.turns if t.kind == "score"),
        scores_parsed=sum(1 for r in results for t in r.turns if t.kind == "score" and t.score is not None),
        tokens_p50=float(np.percentile(per_problem, 50)),
        tokens_p95=float(np.percentile(per_problem, 95)),
    )
