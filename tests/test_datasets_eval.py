from __future__ import annotations

import json
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted
from agentgraph.eval.datasets import PRESETS, arith, load_dataset
from agentgraph.eval.evaluation import evaluate
from agentgraph.eval.metrics import compute_metrics, wilson
from agentgraph.graph.generators import full
from tests.agents import calc, noisy


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_read_the_shared_files(preset: str) -> None:
    problems = load_dataset(preset, limit=5)
    assert len(problems) == 5
    assert all(p.question and p.answer for p in problems)
    assert len({p.id for p in problems}) == 5


def test_gold_answers_are_normalised() -> None:
    assert load_dataset("gsm8k", limit=1)[0].answer == "18"  # from "... #### 18"
    assert load_dataset("mawps-singleop", limit=1)[0].answer == "14"  # from 14.0
    assert load_dataset("math500", limit=1)[0].answer.startswith("\\left( 3")


def test_arith_is_seeded_and_exact() -> None:
    a, b = arith("+-*", 2, 50, seed=3), arith("+-*", 2, 50, seed=3)
    assert a == b and a != arith("+-*", 2, 50, seed=4)
    for p in a:
        x, op, y = p.question.removeprefix("What is ").removesuffix("?").split()
        assert str(eval(f"{x}{op}{y}")) == p.answer
    assert load_dataset("arith:ops=*,digits=1,n=7,seed=2") == arith("*", 1, 7, 2)


def test_field_mapping_and_huggingface_loader(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text(
        '{"q": "What is 2 + 2?", "gold": 4, "key": "x1"}\n{"q": "What is 3 + 3?", "gold": 6, "key": "x2"}\n'
    )
    problems = load_dataset(f"{f}#question=q,answer=gold,id=key")
    assert [(p.id, p.answer) for p in problems] == [("x1", "4"), ("x2", "6")]
    d = tmp_path / "hub"
    d.mkdir()
    (d / "test.jsonl").write_text('{"input": "What is 1 + 1?", "target": 2.0}\n')
    (hf,) = load_dataset(f"hf:{d}@test")  # the real datasets.load_dataset path, on local files
    assert hf.answer == "2" and hf.question == "What is 1 + 1?"
    with pytest.raises(ag.ConfigError, match="cannot load hf:"):
        load_dataset(f"hf:{tmp_path / 'nothing-here'}@test")


def test_wilson_interval() -> None:
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


async def test_metrics_from_known_sessions(tmp_path: Path) -> None:
    problems = arith("+", 2, 20, seed=0)
    team = ag.Team(full(3), rounds=2)
    m, results = await evaluate(team, problems, Scripted(default=noisy, seed=1), tmp_path, progress=False)
    assert m.n == 20 and m.correct == sum(bool(r.correct) for r in results)
    assert m.oracle >= m.maj_at_k and m.oracle >= max(m.per_agent_accuracy.values())
    assert m.prompt_tokens_per_problem == pytest.approx(sum(r.usage.prompt_tokens for r in results) / 20)
    assert sum(m.tokens_by_round.values()) == pytest.approx(
        m.prompt_tokens_per_problem + m.completion_tokens_per_problem
    )
    assert m.latency_p50_s <= m.latency_p95_s
    again = compute_metrics("x", results)
    assert again.accuracy == m.accuracy and again.agreement == m.agreement
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["correct"] == m.correct


async def test_resume_after_a_crash_counts_nothing_twice(tmp_path: Path) -> None:
    problems = arith("+", 2, 6, seed=0)
    team = ag.Team(full(2), rounds=2)
    await evaluate(team, problems[:4], Scripted(default=calc), tmp_path, progress=False)
    # simulate a crash mid-session: a header and one turn of problem 5, then a torn line
    t = tmp_path / "transcripts.jsonl"
    lines = t.read_text().splitlines()
    header = json.loads(lines[0])
    header["session"] = problems[4].id
    with t.open("a") as fh:
        fh.write(json.dumps(header) + "\n" + '{"type": "turn", "turn": {"id": "x"')
    with pytest.raises(ag.ConfigError, match="--resume"):
        await evaluate(team, problems, Scripted(default=calc), tmp_path, progress=False)
    m, results = await evaluate(team, problems, Scripted(default=calc), tmp_path, resume=True, progress=False)
    assert m.n == 6 and m.correct == 6
    assert sorted(r.session for r in results) == sorted(p.id for p in problems)
    loaded = ag.load(t)
    assert len(loaded[problems[4].id].turns) == 4  # the partial attempt's turns were superseded
