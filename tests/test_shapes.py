"""Test-time-scaling shapes and matched-budget comparison, on scripted agents of known accuracy."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.core.answers import answer_key, is_correct, parse_score
from agentgraph.core.errors import ConfigError
from agentgraph.core.stats import maj_at_k, paired_difference, pass_at_k
from agentgraph.engine.transcript import load
from agentgraph.eval.budget import SamplePool, effect
from agentgraph.eval.evaluation import compare, evaluate
from agentgraph.eval.metrics import compute_metrics
from tests.agents import _solve

_BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


def solver(p: float) -> Callable[[ScriptedCall], str]:
    """Right with probability ``p``, else the one wrong answer gold + 1 (so a vote is binary)."""

    def agent(call: ScriptedCall) -> str:
        v = _solve(call.problem) or 0
        return f"The answer is \\boxed{{{v if call.rng.random() < p else v + 1}}}."

    return agent


def perfect_grader(call: ScriptedCall) -> str:
    """10 if the graded solution's last answer is right, 0 if wrong, 5 if it has none yet."""
    found = _BOXED.findall(call.prompt)
    if not found:
        return "\\boxed{5}"
    return "\\boxed{10}" if int(found[-1]) == _solve(call.problem) else "\\boxed{0}"


def majority_formula(p: float, n: int) -> float:
    """P(the right answer wins a binary plurality of n votes), ties broken by a fair coin."""
    win = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n // 2 + 1, n + 1))
    tie = math.comb(n, n // 2) * (p * (1 - p)) ** (n // 2) if n % 2 == 0 else 0.0
    return win + tie / 2


def run_team(team: ag.Team, backend: Scripted, n: int, seed: int = 3) -> list[ag.SessionResult]:
    problems = ag.load_dataset(f"arith:ops=+,n={n},seed={seed}")
    _, results = asyncio.run(evaluate(team, problems, backend, progress=False))
    return results


@pytest.mark.parametrize("n", [5, 4])
def test_sc_accuracy_matches_binomial_majority(n: int) -> None:
    p, problems = 0.6, 1500
    results = run_team(ag.shape(f"sc:{n}"), Scripted(default=solver(p), seed=1), problems)
    m = compute_metrics(f"sc:{n}", results)
    expected = majority_formula(p, n)
    se = math.sqrt(expected * (1 - expected) / problems)
    assert abs(m.accuracy - expected) < 3 * se, (m.accuracy, expected)
    assert all(r.rounds_run == 1 and len(r.turns) == n for r in results)
    # the unbiased estimators over the same samples: maj@k and pass@k of a p-accurate sampler
    for k in range(1, n + 1):
        want = majority_formula(p, k)
        assert abs(m.maj_at[k] - want) < 3 * math.sqrt(want * (1 - want) / problems), (k, m.maj_at[k], want)
        assert abs(m.pass_at[k] - (1 - (1 - p) ** k)) < 0.04, (k, m.pass_at[k])


def test_bon_with_a_perfect_verifier_reaches_the_oracle() -> None:
    backend = Scripted({"solver": solver(0.3), "grader": perfect_grader}, seed=2)
    results = run_team(ag.shape("bon:4"), backend, 400)
    m = compute_metrics("bon:4", results)
    assert m.accuracy == m.oracle
    assert m.oracle > majority_formula(0.3, 4) + 0.2  # the grader, not the vote, decided
    for r in results:
        candidates = [t for t in r.turns if t.kind == "agent"]
        grades = [t for t in r.turns if t.kind == "score"]
        assert len(candidates) == 4 and len(grades) == 4
        assert r.correct == any(is_correct(t.answer, r.gold or "") for t in candidates)
        assert all(t.answer is None and t.score in (0.0, 10.0) for t in grades)
        assert r.decision.score == (10.0 if r.correct else 0.0)


def test_bon_ties_vote_and_unparseable_scores_rank_last() -> None:
    def grader(call: ScriptedCall) -> str:  # g0 unparseable, g1 and g2 tie at 7, g3 lower
        return {"g0": "I like it", "g1": "\\boxed{7}", "g2": "\\boxed{7.0}", "g3": "\\boxed{3}"}[call.agent]

    answers = {"a0": "1", "a1": "2", "a2": "2", "a3": "5"}
    backend = Scripted({"grader": grader}, default=lambda c: f"\\boxed{{{answers[c.agent]}}}")
    r = asyncio.run(ag.solve(ag.shape("bon:4"), "What is 1 + 1?", backend, gold="2"))
    assert r.answer == "2" and r.decision.score == 7.0 and "tied at score 7" in r.decision.note
    score_of = {t.agent: t.score for t in r.turns if t.kind == "score"}
    assert score_of == {"g0": None, "g1": 7.0, "g2": 7.0, "g3": 3.0}
    # nobody parseable: the candidates vote, and the note says so
    mute = Scripted({"grader": lambda c: "no idea"}, default=lambda c: f"\\boxed{{{answers[c.agent]}}}")
    r = asyncio.run(ag.solve(ag.shape("bon:4"), "What is 1 + 1?", mute, gold="2"))
    assert (
        r.answer == "2"
        and r.decision.score is None
        and "no candidate has a parseable score" in r.decision.note
    )


def test_score_parsing_is_strict() -> None:
    assert parse_score("\\boxed{8}") == 8.0 and parse_score("so \\boxed{3} then \\boxed{9}") == 9.0
    assert parse_score("\\boxed{8/10}") == 8.0 and parse_score("\\boxed{0}") == 0.0
    for bad in ("8", "score: 8", "\\boxed{eight}", "\\boxed{11}", "\\boxed{-1}", "\\boxed{2+3}", "", None):
        assert parse_score(bad) is None, bad


def test_cascade_spends_the_large_team_only_where_the_cheap_shape_disagreed() -> None:
    backend = Scripted(default=solver(0.6), seed=4)
    team = ag.shape("cascade:sc:3+full:3")
    results = run_team(team, backend, 300)
    escalated = 0
    for r in results:
        cheap = [t for t in r.turns if t.agent.startswith("s0.")]
        large = [t for t in r.turns if t.agent.startswith("s1.")]
        disagreed = len({answer_key(t.answer) for t in cheap}) > 1
        assert len(cheap) == 3
        assert bool(large) == disagreed, r.session
        assert r.decision.stage == (1 if disagreed else 0)
        assert r.decision.stage_answers[0] is not None and len(r.decision.stage_answers) == 1 + disagreed
        if disagreed:
            escalated += 1
            assert len(large) == 6 and {t.round for t in large} == {1, 2} and r.rounds_run == 3
            assert "escalated: agreement" in r.decision.note
        else:
            assert r.usage.total_tokens == sum(t.prompt_tokens + t.completion_tokens for t in cheap)
    m = compute_metrics("cascade", results)
    assert m.stages == {0: 300 - escalated, 1: escalated}
    assert 0.5 < escalated / 300 < 0.9  # P(3 samples disagree) = 1 − 0.6³ − 0.4³ = 0.72
    # the stage's settings come from the shape: a score rule escalates graded stages
    graded = ag.shape("cascade:bon:2+full:3", min_score=8)
    low = Scripted({"grader": lambda c: "\\boxed{6}"}, default=solver(1.0))
    r = asyncio.run(ag.solve(graded, "What is 2 + 2?", low, gold="4"))
    assert r.decision.stage == 1 and "score 6 < 8" in r.decision.note


def test_beam_search_keeps_the_best_and_finishes_with_a_verified_answer() -> None:
    def stepper(call: ScriptedCall) -> str:
        return f"step {call.round}: add the numbers."

    backend = Scripted({"stepper": stepper, "finisher": solver(0.3), "grader": perfect_grader}, seed=5)
    results = run_team(ag.shape("beam:2x3"), backend, 200)
    for r in results:
        assert r.rounds_run == 3
        finals = [t for t in r.turns if t.kind == "agent" and t.round == 2]
        assert len(finals) == 4 and all(t.role == "finisher" for t in finals)
        assert r.correct == any(is_correct(t.answer, r.gold or "") for t in finals)
        # a proposal at depth d reads its path: d earlier steps, one per depth
        assert all(len(t.read) == 2 for t in finals)
        by_id = {t.id: t for t in r.turns}
        assert all([by_id[i].round for i in t.read] == [0, 1] for t in finals)
    m = compute_metrics("beam", results)
    assert m.accuracy == m.oracle and m.accuracy > 0.6  # 1 − 0.7⁴ = 0.76


def test_shapes_fix_their_rounds_and_refuse_bad_specs() -> None:
    assert ag.shape("sc:3", rounds=4).rounds == 1  # the CLI's team-wide --rounds does not apply
    assert ag.shape("full:3", rounds=4).rounds == 4
    with pytest.raises(ConfigError, match="rounds: sc:3 runs 1 round"):
        ag.Team(ag.self_consistency(3), rounds=2)
    with pytest.raises(ConfigError, match="strategy"):
        ag.Team(ag.beam(2, 2))
    with pytest.raises(ConfigError, match="cascade:A"):
        ag.shape("cascade:sc:3")
    with pytest.raises(ConfigError, match="best_score needs grader"):
        ag.Team(ag.full(3), decision="best_score")


def test_effect_of_extra_compute_is_counted_per_problem() -> None:
    results = run_team(ag.shape("sc:5"), Scripted(default=solver(0.6), seed=6), 300)
    m = compute_metrics("sc:5", results)
    assert sum(m.effects.values()) == 300
    for r in results:
        first = min((t for t in r.turns if t.round == 0), key=lambda t: t.id)
        was = is_correct(first.answer, r.gold or "")
        same = answer_key(first.answer) == answer_key(r.answer)
        want = (
            "helped"
            if r.correct and not was
            else "hurt"
            if was and not r.correct
            else "same"
            if same
            else "changed"
        )
        assert effect(r) == want
    # with p > 1/2 voting helps more often than it hurts
    assert m.effects["helped"] > m.effects["hurt"] > 0


def test_matched_budget_picks_n_from_measured_tokens(tmp_path: Path) -> None:
    backend = Scripted({"grader": perfect_grader}, default=solver(0.6), seed=7)
    teams = [(s, ag.shape(s)) for s in ("single", "bon:3", "full:3")]
    problems = ag.load_dataset("arith:ops=+,n=60,seed=2")
    c = asyncio.run(compare(teams, problems, backend, tmp_path, budget="matched", progress=False))
    # recompute everything from the transcripts on disk
    runs = []
    for folder in ("pool-0", "pool-1"):
        sessions = load(tmp_path / "matched-sc" / folder / "transcripts.jsonl")
        runs.append([sessions[p.id].result for p in problems])
    per_problem: list[list[int]] = [[] for _ in problems]
    for run in runs:
        for i, r in enumerate(run):
            assert r is not None
            for t in sorted(r.turns, key=lambda t: int(t.agent[1:])):
                per_problem[i].append(t.prompt_tokens + t.completion_tokens)
    for row in c.matched:
        team_dir = tmp_path / row.team.replace(":", "_")
        target = json.loads((team_dir / "metrics.json").read_text())
        target_tokens = target["prompt_tokens_per_problem"] + target["completion_tokens_per_problem"]
        assert row.team_tokens_per_problem == pytest.approx(target_tokens)
        mean_at = [
            float(np.mean([sum(s[:n]) for s in per_problem])) for n in range(1, len(per_problem[0]) + 1)
        ]
        best = min(range(len(mean_at)), key=lambda i: abs(mean_at[i] - target_tokens)) + 1
        assert row.sc_n == best and row.sc_tokens_per_problem == pytest.approx(mean_at[best - 1])
        assert not row.pool_short
        assert row.sc_expected == pytest.approx(c.curves[row.sc_n][1])  # maj@N of the whole pool
        lo, hi = row.difference_ci95
        assert lo <= row.difference <= hi and row.difference == pytest.approx(
            row.team_accuracy - row.sc_accuracy
        )
    assert [r.sc_n for r in c.matched] == sorted(r.sc_n for r in c.matched)  # single < bon:3 < full:3
    assert c.matched[0].sc_n <= 3 < c.matched[-1].sc_n
    report = (tmp_path / "report.md").read_text()
    assert "better than voting at the same cost" in report and "sc:" in report
    assert set(c.curves) == set(range(1, len(per_problem[0]) + 1))


def test_pool_prefix_votes_are_sc_runs() -> None:
    pool = SamplePool([[("1", 5), ("2", 5), ("2", 5)]], ["2"], ["p"])
    assert pool.correct_at(1) == [False] and pool.correct_at(3) == [True]
    assert pool.choose_n(9.9) == 2 and pool.choose_n(100) == 3 and pool.tokens_at(3) == 15


def test_pass_and_maj_at_k_equal_brute_force_over_subsets() -> None:
    rng = random.Random(0)
    for _ in range(150):
        n = rng.randint(1, 8)
        samples = [rng.choice(["r", "a", "b", None]) for _ in range(n)]
        k = rng.randint(1, n)
        counts = {s: samples.count(s) for s in set(samples)}
        wins = passes = 0.0
        subsets = list(itertools.combinations(samples, k))
        for sub in subsets:
            tally = {a: sub.count(a) for a in set(sub) if a is not None}
            passes += "r" in sub
            if tally:
                best = max(tally.values())
                tied = [a for a, v in tally.items() if v == best]
                wins += ("r" in tied) / len(tied)
        assert maj_at_k(counts, "r", k) == pytest.approx(wins / len(subsets))
        assert pass_at_k(n, samples.count("r"), k) == pytest.approx(passes / len(subsets))


def test_paired_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(0)
    covered, trials, n = 0, 1000, 60
    for _ in range(trials):
        shared = rng.random(n)
        first = shared < 0.6  # correlated outcomes, true difference 0.1
        second = (shared < 0.5) ^ (rng.random(n) < 0.1)
        true = 0.6 - (0.5 * 0.9 + 0.5 * 0.1)
        _, lo, hi = paired_difference(list(first), list(second))
        covered += lo <= true <= hi
    assert 0.92 <= covered / trials <= 0.99
