"""Label-free and custom rewards, shared-policy role GRPO, and the structured tasks (issue 27)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.core.answers import is_correct
from agentgraph.core.errors import ConfigError
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem, arith, ledger, load_dataset
from agentgraph.graph.generators import chain, full
from agentgraph.train import GraphGRPOConfig, RoleGRPOConfig, RoleGRPOTrainer
from agentgraph.train.adapters import Publisher, load_adapters
from agentgraph.train.credit import advantages
from agentgraph.train.rewards import RewardError, called, group_session_rewards, plurality, turn_rewards_of
from examples.train_roles_arith import additions, make_team
from tests.test_train_roles import adder

# session id "p{problem}-g{j}" → the answer that session's one solver gives
ANSWERS = {
    0: ["5", "5", "5", "7"],  # plurality 5 (gold 5): rewards 1, 1, 1, 0
    1: ["3", "3", "8", "8"],  # a tie: no label, no signal
    2: [None, None, None, None],  # nothing parseable: no label
    3: ["9", "9", "4", None],  # plurality 9, but gold is 4: a wrong label
}
GOLD = {0: "5", 1: "3", 2: "1", 3: "4"}


def voter(call: ScriptedCall) -> str:
    p, g = (int(x[1:]) for x in call.request.meta.session.split("-"))
    a = ANSWERS[p][g]
    return "no idea" if a is None else f"\\boxed{{{a}}}"


async def sessions(gold: bool = True) -> tuple[list[SessionResult], list[int]]:
    team = ag.Team(full(1), rounds=1)
    ids = [f"p{p}-g{g}" for p in ANSWERS for g in range(4)]
    golds = [GOLD[p] if gold else None for p in ANSWERS for _ in range(4)]
    results = await ag.solve_many(
        team,
        [f"Problem {p}" for p in ANSWERS for _ in range(4)],
        Scripted(default=voter),
        golds=golds,
        session_ids=ids,
    )
    return results, [p for p in ANSWERS for _ in range(4)]


def test_plurality_needs_a_unique_winner() -> None:
    assert plurality(["5", "5.0", "\\boxed{5}", "7"]) == ("5", 0.75)  # one key for 5, 5.0 and \boxed{5}
    assert plurality(["3", "8"]) is None and plurality([None, None]) is None
    assert plurality(["2", None, None]) == ("2", 1 / 3)  # unparseable votes count in the share


async def test_consensus_rewards_a_known_majority_exactly_and_ties_not_at_all() -> None:
    results, problem_of = await sessions()
    config = RoleGRPOConfig(train_roles=("solver",), alpha=1.0, reward="consensus")
    per_session, lab = turn_rewards_of(results, problem_of, config, None)
    got = [list(r.values()) for r in per_session]
    assert got[0:4] == [[1.0], [1.0], [1.0], [0.0]]  # the majority 5 is the label
    assert got[4:8] == [[], [], [], []]  # tie: these sessions give no signal
    assert got[8:12] == [[], [], [], []]  # no parseable answer: none either
    assert got[12:16] == [[1.0], [1.0], [0.0], [0.0]]  # rewarded against the (wrong) consensus 9
    assert lab.label == {0: "5", 1: None, 2: None, 3: "9"}
    assert lab.labelled == 0.5 and lab.accuracy == 0.5  # 5 is right, 9 is not
    assert lab.agreement == pytest.approx((0.75 + 0.5) / 2)
    # gold rewards of the same sessions, for contrast: problem 3's gold is 4, which only g2 said
    per_gold, gold_labels = turn_rewards_of(
        results, problem_of, config.model_copy(update={"reward": "gold"}), None
    )
    assert [list(r.values()) for r in per_gold[12:16]] == [[0.0], [0.0], [1.0], [0.0]]
    assert gold_labels.accuracy is None


async def test_a_consensus_threshold_labels_only_pluralities_with_that_share() -> None:
    results, problem_of = await sessions()
    config = RoleGRPOConfig(train_roles=("solver",), alpha=1.0, reward="consensus", consensus_min_share=0.6)
    per_session, lab = turn_rewards_of(results, problem_of, config, None)
    # problem 0's 5 has 3 of 4 votes (0.75): kept; problem 3's 9 has 2 of 4 (0.5): no signal now
    assert lab.label == {0: "5", 1: None, 2: None, 3: None}
    assert [list(r.values()) for r in per_session[0:4]] == [[1.0], [1.0], [1.0], [0.0]]
    assert per_session[12:16] == [{}, {}, {}, {}]
    assert lab.labelled == 0.25 and lab.accuracy == 1.0 and lab.agreement == 0.75
    # graph GRPO reads the same threshold from its own config
    rewards, glab = group_session_rewards(results[12:16], "consensus", None, 0.0, min_share=0.6)
    assert rewards == [0.0] * 4 and glab.label == {0: None}
    with pytest.raises(ValidationError, match="consensus_min_share"):
        RoleGRPOConfig(consensus_min_share=0.5)  # gold rewards have no consensus to threshold
    with pytest.raises(ValidationError, match="consensus_min_share"):
        GraphGRPOConfig(reward="gold", consensus_min_share=0.5)


async def test_a_counterfactual_session_is_valued_against_its_groups_consensus() -> None:
    from agentgraph.train.rewards import labelled_value

    results, _ = await sessions()
    # problem 3's group (gold 4) votes 9: the session that said 4 is wrong under consensus, right under gold
    said_4 = results[14]
    assert labelled_value(said_4, "9", "consensus", None, 0.0) == 0.0
    assert labelled_value(said_4, None, "gold", None, 0.0) == 1.0
    assert labelled_value(results[12], "9", "consensus", None, 0.0) == 1.0
    assert labelled_value(results[12], None, "consensus", None, 0.0) == 0.0  # no label, no signal


async def test_consensus_needs_no_gold_and_reports_no_label_accuracy_without_it() -> None:
    results, problem_of = await sessions(gold=False)
    config = RoleGRPOConfig(train_roles=("solver",), alpha=1.0, reward="consensus")
    per_session, lab = turn_rewards_of(results, problem_of, config, None)
    assert [list(r.values()) for r in per_session[0:4]] == [[1.0], [1.0], [1.0], [0.0]]
    assert lab.accuracy is None and lab.labelled == 0.5


def halves(result: SessionResult) -> float:
    """A reward that is not answer matching: 1 for an even session number, 0.25 for an odd one."""
    return 1.0 if int(result.session.rsplit("g", 1)[1]) % 2 == 0 else 0.25


def by_turn(result: SessionResult) -> dict[str, float]:
    return {t.id: float(len(t.text) % 3) for t in result.turns}


def broken(result: SessionResult) -> object:
    return "high"


async def test_a_custom_reward_function_is_checked() -> None:
    results, _ = await sessions()
    assert called(halves, results[0]) == 1.0
    assert set(called(by_turn, results[0])) == {t.id for t in results[0].turns}  # type: ignore[arg-type]
    with pytest.raises(RewardError, match="broken returned str"):
        called(broken, results[0])  # type: ignore[arg-type]
    with pytest.raises(RewardError, match="not in session"):
        called(lambda r: {"elsewhere:r0:a0": 1.0}, results[0])
    with pytest.raises(ValueError, match="'no such thing' is not a reward"):  # pydantic's, naming the field
        RoleGRPOConfig(reward="no such thing")
    with pytest.raises(ConfigError, match="has no 'nope'"):
        RoleGRPOTrainer(
            make_team(),
            additions(4, 0),
            Scripted(),
            RoleGRPOConfig(train_roles=("adder",), reward="tests.test_rewards:nope"),
        )


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from agentgraph.core.models import provision

    return AutoTokenizer.from_pretrained(provision())


def trainer(tokenizer: Any, out: Path, **config: Any) -> RoleGRPOTrainer:
    backend = Scripted(default=adder, seed=1, tokenizer=tokenizer)
    settings: dict[str, Any] = dict(
        train_roles=("adder", "checker"),
        group_size=4,
        problems_per_step=2,
        steps=2,
        learning_rate=1e-3,
        lora_r=4,
        lora_alpha=8,
        kl_every=0,
        eval_every=0,
        guard="none",  # a held-out dip at the last step would otherwise restore the first adapters
    )
    c = RoleGRPOConfig(**(settings | config))
    return RoleGRPOTrainer(make_team(), additions(20, 0), backend, c, heldout=additions(4, 9), out=out)


async def test_a_custom_reward_functions_values_reach_the_loss(tokenizer: Any, tmp_path: Path) -> None:
    t = trainer(tokenizer, tmp_path, reward="tests.test_rewards:halves", steps=1)
    seen: list[Any] = []
    update = t.policy.update

    def spy(samples: Any, **kw: Any) -> Any:
        seen.extend(samples)
        return update(samples, **kw)

    t.policy.update = spy  # type: ignore[method-assign]
    log = await t.train()
    # every trained turn's reward is its session's 1 or 0.25; within a (problem, role, round) group the
    # advantages are those of these values — exactly what the loss was given
    assert seen and log[0].turns == len(seen)
    expected = advantages([1.0, 0.25, 1.0, 0.25])
    assert {round(s.advantage, 6) for s in seen} == {round(float(a), 6) for a in expected}
    assert log[0].reward == pytest.approx(0.625)


async def test_shared_policy_trains_one_adapter_for_every_role(tokenizer: Any, tmp_path: Path) -> None:
    t = trainer(tokenizer, tmp_path, shared_policy=True)
    assert set(t.policy.params) == {"shared"}
    before = [p.detach().clone() for p in t.policy.params["shared"]]
    log = await t.train()
    assert all(x.turns > 0 for x in log)
    # published (the scripted backend serves no LoRA, so the trainer holds no publisher): one adapter
    # saved and served to both roles
    pub = Publisher(Scripted(), tmp_path / "pub", t.config.train_roles, adapter_of=t.config.adapter_of)
    await pub.publish(t.policy.model, 7)
    assert {r: a.name for r, a in pub.served.items()} == {"adder": "shared@7", "checker": "shared@7"}
    assert [p.name for p in (tmp_path / "pub" / "adapters" / "step-7").iterdir() if p.is_dir()] == ["shared"]
    assert any(not torch.equal(a, b) for a, b in zip(t.policy.params["shared"], before, strict=True))
    index = json.loads((tmp_path / "adapters.json").read_text())
    assert index["roles"]["adder"] == index["roles"]["checker"] and index["roles"]["adder"].endswith(
        "/shared"
    )
    adapters, _ = load_adapters(tmp_path)
    assert adapters["adder"] == adapters["checker"]  # one LoRA slot on the engine, not two
    # a run trained shared does not resume as per-role
    again = trainer(tokenizer, tmp_path, steps=3)
    with pytest.raises(ConfigError, match="shared_policy"):
        await again.train(resume=True)


def test_training_without_gold_needs_a_label_free_reward(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 2?"}) + "\n")
    with pytest.raises(ConfigError, match=r"row 1\.answer: missing"):
        load_dataset(f"{data}#question=question,answer=answer")
    problems = load_dataset(f"{data}#question=question", gold="optional")
    assert problems[0].answer is None
    team = make_team()
    with pytest.raises(ConfigError, match="reward=gold"):
        RoleGRPOTrainer(team, problems, Scripted(), RoleGRPOConfig(train_roles=("adder",)))
    with pytest.raises(ConfigError, match=r"heldout.*held-out evaluation"):
        RoleGRPOTrainer(
            team,
            problems,
            Scripted(),
            RoleGRPOConfig(train_roles=("adder",), reward="consensus"),
            heldout=problems,
        )


def test_structured_arithmetic_answers_are_the_expressions_values() -> None:
    for ops in ("+-", "+-*"):
        for p in arith(ops=ops, operands=5, n=100, seed=4):
            expr = p.question.removeprefix("What is ").removesuffix("?")
            assert len(re.findall(r"\d+", expr)) == 5
            assert int(p.answer or "") == eval(expr)
            assert is_correct(f"so the result is \\boxed{{{p.answer}}}", p.answer or "")
    assert arith(n=30, seed=2) == arith(n=30, seed=2, operands=2)  # two operands: the old datasets


def test_ledger_answers_replay_the_events() -> None:
    for p in ledger(events=5, n=100, seed=1):
        stock = int(re.match(r"A shop has (\d+)", p.question).group(1))  # type: ignore[union-attr]
        for verb, k in re.findall(r"It (sells|buys) (\d+)", p.question):
            stock += int(k) if verb == "buys" else -int(k)
            assert stock >= 0
        assert str(stock) == p.answer
    assert len(load_dataset("ledger:events=4,n=7")) == 7
    with pytest.raises(ConfigError, match=r"ledger\.events"):
        load_dataset("ledger:events=0")
    with pytest.raises(ConfigError, match=r"arith\.operands"):
        load_dataset("arith:operands=1")


def running(call: ScriptedCall) -> str:
    """A perfect accumulator: applies the next operation of the problem to the running result."""
    expr = (
        call.request.meta.problem.removeprefix("What is ").removesuffix("?").replace("(", "").replace(")", "")
    )
    tokens = expr.split()
    done = re.findall(r"step (\d+)", call.prompt)
    k = int(done[-1]) if done else 0
    value = int(tokens[0]) if not done else int(re.findall(r"\\boxed\{(-?\d+)\}", call.prompt)[-1])
    op, b = tokens[2 * k + 1], int(tokens[2 * k + 2])
    value = value + b if op == "+" else value - b if op == "-" else value * b
    return f"step {k + 1}: \\boxed{{{value}}}"


async def test_a_chain_of_accumulators_passes_its_running_result_on() -> None:
    problems = arith(ops="+-*", operands=5, n=10, seed=7)
    team = ag.Team(chain(4, role="accumulator"), rounds=1, decision="chain_tail")
    assert team.role("a0").name == "accumulator" and "running result" in team.role("a1").instruction
    results = await ag.solve_many(
        team, [p.question for p in problems], Scripted(default=running), golds=[p.answer for p in problems]
    )
    assert all(r.correct for r in results)  # the last agent's box is the value of the whole chain
    assert all(len(r.turns) == 4 and r.decision.method == "chain_tail" for r in results)


def test_graph_training_under_consensus_selects_on_problems_with_gold() -> None:
    from agentgraph.train import GraphGRPOConfig, GraphGRPOTrainer

    unlabelled = [Problem(id=str(i), question=f"What is {i} + 1?") for i in range(4)]
    with pytest.raises(ConfigError, match="select_problems"):
        GraphGRPOTrainer(full(3), unlabelled, Scripted(), GraphGRPOConfig(reward="consensus"))
    t = GraphGRPOTrainer(
        full(3), unlabelled, Scripted(), GraphGRPOConfig(reward="consensus", select_problems=0)
    )
    assert t.select_pool == []


def test_label_free_comparison_reads_kept_runs_and_compares_gains(tmp_path: Path) -> None:
    # every run's summary is on disk, so nothing is trained again: the comparison is arithmetic
    from examples.label_free_arith import main as label_free

    for reward, final, labels in (("gold", 0.9, [None, None]), ("consensus", 0.5, [0.5, 1.0])):
        run = tmp_path / f"lf-{reward}-0"
        run.mkdir()
        summary = {
            "reward": reward, "seed": 0, "test_curve": [[0, 0.3], [2, final]], "test_problems": 200,
            "label_accuracy": labels, "labelled": [0.5, 1.0], "rollbacks": [],
        }  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
    out = label_free(["--seeds", "0", "--out", str(tmp_path / "lf"), "--plot", str(tmp_path / "p.png")])
    gold, consensus = out["rows"]
    assert gold["gain"] == pytest.approx(0.6) and consensus["gain"] == pytest.approx(0.2)
    assert out["gain_ratio"] == pytest.approx(1 / 3) and out["target_met"] is False
    assert consensus["label_accuracy"] == pytest.approx(0.75) and consensus["labelled"] == pytest.approx(0.75)
    lo, hi = gold["test_final_ci95"]
    assert lo < 0.9 < hi and (tmp_path / "p.png").stat().st_size > 0
