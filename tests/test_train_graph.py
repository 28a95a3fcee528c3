from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import agentgraph as ag
from agentgraph.backends import Scripted
from agentgraph.eval.datasets import arith
from agentgraph.graph.generators import chain
from agentgraph.train import GraphGRPOConfig, GraphGRPOTrainer
from examples.train_graph_adversarial import main as adversarial
from tests.agents import calc, noisy


def trainer(tmp_path: Path | None = None, **cfg: object) -> GraphGRPOTrainer:
    base = chain(3, memory=False)
    for u, v, k in base.edges(keys=True):
        base.edges[u, v, k]["logit"] = 0.0
    settings: dict[str, object] = {"group_size": 4, "steps": 12, "checkpoint_every": 5, **cfg}
    config = GraphGRPOConfig.model_validate(settings)
    return GraphGRPOTrainer(
        base,
        arith("+", 2, 30, seed=0),
        Scripted(default=noisy, seed=3),
        config,
        make_team=lambda t: ag.Team(t, rounds=1),
        out=tmp_path,
    )


def test_log_prob_is_the_bernoulli_likelihood() -> None:
    t = trainer()
    with torch.no_grad():
        t.logits.copy_(torch.tensor([0.3, -1.2]))
    mask = torch.tensor([True, False])
    expected = torch.log(torch.sigmoid(torch.tensor(0.3))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.2)))
    assert float(t.log_prob(mask, torch.zeros(0, dtype=torch.bool)).detach()) == pytest.approx(
        float(expected), abs=1e-6
    )


def test_explore_samples_every_edge_at_least_epsilon_and_scores_that_mixture() -> None:
    t = trainer(explore=0.1)
    logits = torch.tensor([-30.0, 1.0])  # an edge cut beyond any doubt, and a likely one
    with torch.no_grad():
        t.logits.copy_(logits)
    q = 0.1 + 0.8 * torch.sigmoid(logits)  # [0.1, 0.685]
    rate = torch.stack([t.sample()[1] for _ in range(4000)]).float().mean(0)
    assert rate.tolist() == pytest.approx(q.tolist(), abs=0.025)
    lp = t.log_prob(torch.tensor([True, False]), torch.zeros(0, dtype=torch.bool))
    assert float(lp.detach()) == pytest.approx(float(torch.log(q[0]) + torch.log(1 - q[1])), abs=1e-5)
    plain = trainer()
    with torch.no_grad():
        plain.logits.copy_(logits)
    assert not any(bool(plain.sample()[1][0]) for _ in range(1000))  # without ε the cut edge never returns


async def test_group_advantage_moves_logits_toward_rewarded_graphs() -> None:
    # the agents are always right, so an edge only adds tokens: with a token cost every logit must fall
    t = trainer(token_cost=1.0, steps=30, learning_rate=0.2)
    t.backend = Scripted(default=calc)
    before = t.logits.detach().clone()
    await t.train()
    assert torch.all(t.logits.detach() < before)  # every edge only adds tokens: all logits fall
    assert len(t.log) == 30 and t.log[-1].tokens < t.log[0].tokens + 1e-9


async def test_checkpoint_resume_continues_exactly(tmp_path: Path) -> None:
    full_run = trainer(tmp_path / "a")
    await full_run.train()
    first = trainer(tmp_path / "b", steps=12)
    first.config = first.config.model_copy(update={"steps": 5})
    await first.train()
    resumed = trainer(tmp_path / "b")
    await resumed.train(resume=True)
    assert resumed.step == 12
    assert torch.allclose(resumed.logits, full_run.logits)
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 13))  # nothing lost, nothing doubled
    for f in ("checkpoint.pt", "pruned.json", "learning_curve.png", "topology.png"):
        assert (tmp_path / "b" / f).exists()
    assert ag.Topology.load(tmp_path / "b" / "pruned.json").same_as(resumed.pruned())


async def test_iterative_pruning_masks_never_regrow() -> None:
    t = trainer(prune_ratio=0.5, prune_every=3, steps=9)
    counts = []
    for _ in range(9):
        await t.train_step()
        counts.append(int(t.active.sum()))
    assert counts == sorted(counts, reverse=True) and counts[-1] == 1
    assert all(
        p == 0.0 for name, p in t.probabilities().items() if not t.active[list(t.probabilities()).index(name)]
    )


def test_adversarial_setting_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        adversarial(
            # the first wave's setting: 1 problem per step, threshold pruning alone
            ["--seeds", "1", "--iterations", "200", "--group", "4", "--problems-per-step", "1"]  # noqa: RUF005
            + ["--select", "0", "--eval-problems", "500", "--json"]
        )
        == 0
    )
    j = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert j["p_adversary_to_decision"] < 0.10
    assert j["p_truthful_to_decision"] > 0.90
    assert abs(j["accuracy_pruned"] - j["accuracy_truthful_only"]) <= 0.01
    assert j["accuracy_full"] < 0.5


def persuadable_trainer(learned: dict[str, float], **config: float) -> GraphGRPOTrainer:
    """3 truthful (p 0.8) + 3 persuading adversaries, with these edge logits (every other edge −3)."""
    from examples.train_graph_adversarial import base_topology, make_backend, make_problems, team

    problems, gold = make_problems(400, 0, "train")
    backend = make_backend(gold, 0.8, persuadable=True, seed=0)
    cfg = GraphGRPOConfig(**{"select_problems": 200, "seed": 0, **config})
    t = GraphGRPOTrainer(base_topology(3, 3), problems, backend, cfg, make_team=team)
    with torch.no_grad():
        for i, (u, v, _) in enumerate(t.edges):
            t.logits[i] = learned.get(f"{u}->{v}", -3.0)
    return t


async def test_select_finds_the_truthful_graph_the_threshold_misses() -> None:
    # the persuadable local optimum: truthful -> truthful edges still above 0.5 while the truthful ->
    # decision edges are learned; the threshold keeps them (correlated votes), selection must not
    t = persuadable_trainer(
        {"t0->decision": 3.0, "t1->decision": 2.0, "t2->decision": 1.5, "t0->t1": 1.0, "t1->t2": 0.8}
    )
    truthful = {("t0", "decision"), ("t1", "decision"), ("t2", "decision")}
    assert set(t.pruned().edges_of("spatial")) == truthful | {("t0", "t1"), ("t1", "t2")}
    chosen = await t.select()
    assert set(chosen.edges_of("spatial")) == truthful
    tried = dict(t.selection)
    assert tried[3] > tried[5]  # the correlated graph really is worse on the same problems
    assert [k for k, _ in t.selection[:6]] == [0, 1, 2, 3, 4, 5]  # nested candidates first


async def test_select_adds_back_a_decision_edge_the_learner_pushed_down() -> None:
    # the other persuadable local optimum: t2 -> decision was cut while adversaries still persuaded
    # t2, so its low probability survives; no removal can reach the truthful graph, an addition can
    learned = {"t0->decision": 3.0, "t1->decision": 2.0, "t2->decision": -2.5}
    t = persuadable_trainer(learned)
    chosen = await t.select()
    assert set(chosen.edges_of("spatial")) == {("t0", "decision"), ("t1", "decision"), ("t2", "decision")}
    nested = len(t.candidates())
    assert nested == 3  # 0, 1 or 2 edges: the needed edge was below select_min_p
    assert max(r for k, r in t.selection[:nested]) < max(r for k, r in t.selection if k == 3)
    strict = persuadable_trainer(learned, select_se=50.0)
    assert len((await strict.select()).edges_of("spatial")) < 3  # no gain clears a 50-SE margin


def voters_into_d(agents: str) -> ag.Topology:
    """Each agent an edge into the decision node ``d`` (logit 0), nothing else."""
    base = ag.Topology()
    base.add_agent("d", root=True)
    for a in agents:
        base.add_agent(a)
        base.add_spatial(a, "d", logit=0.0)
    return base


async def test_stepwise_selection_adds_the_third_voter_before_removing() -> None:
    # plurality with random ties: two voters are no better than one, three are. From the nested best
    # {a, b}, removal first would cut to one voter and no single addition could help any more.
    from agentgraph.train.selection import stepwise

    base = voters_into_d("abc")
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 400)
    by_voters = {0: 0.0, 1: 0.6, 2: 0.6, 3: 0.8}

    async def score(g: ag.Topology) -> np.ndarray:
        return by_voters[len(g.edges_of("spatial"))] + noise

    prob = {("a", "d", "spatial"): 0.9, ("b", "d", "spatial"): 0.8, ("c", "d", "spatial"): 0.1}
    nested = [base.keep_edges(list(prob)[:k]) for k in range(3)]
    pool = list(prob)
    chosen = await stepwise(nested, pool, base, prob.__getitem__, score, kinds=("spatial",))
    assert len(chosen.edges_of("spatial")) == 3

    async def unpaired(g: ag.Topology) -> np.ndarray:  # sd 0.3 per problem: the 0.2 gain is ~10 SE
        return by_voters[len(g.edges_of("spatial"))] + rng.normal(0, 0.3, 400)

    strict = await stepwise(nested, pool, base, prob.__getitem__, unpaired, kinds=("spatial",), se=20)
    assert len(strict.edges_of("spatial")) == 1  # the third voter does not clear 20 SE; one voter does


async def test_a_held_out_pick_undoes_a_chance_winner_of_the_search() -> None:
    # on the search's problems a harmful fourth edge looks better (its noise happens to favour it);
    # on fresh problems it does not, and the held-out pick returns the graph from before it came in
    from agentgraph.train.selection import held_out_pick, stepwise

    base = voters_into_d("abcx")
    lucky = np.where(np.arange(200) < 12, 1.0, 0.0)  # the search's problems: 12 chance wins for x

    def voters(g: ag.Topology) -> float:  # the three good voters are worth 0.1 together
        return 0.5 + 0.1 * all(g.has_edge(a, "d") for a in "abc")

    async def on_search(g: ag.Topology) -> np.ndarray:
        return voters(g) + lucky * g.has_edge("x", "d")

    async def on_fresh(g: ag.Topology) -> np.ndarray:  # where x really costs a little
        return np.full(200, voters(g) - 0.02 * g.has_edge("x", "d"))

    prob = {("a", "d", "spatial"): 0.9, ("b", "d", "spatial"): 0.8, ("c", "d", "spatial"): 0.7}
    prob[("x", "d", "spatial")] = 0.1
    nested = [base.keep_edges(list(prob)[:k]) for k in range(4)]
    finalists: list[ag.Topology] = []
    chosen = await stepwise(nested, list(prob), base, prob.__getitem__, on_search, kinds=("spatial",),
                            finalists=finalists)  # fmt: skip
    assert chosen.has_edge("x", "d") and finalists[-1] is chosen  # the search kept the chance winner
    assert len(finalists) >= 2 and not finalists[0].has_edge("x", "d")
    picked, means = await held_out_pick(finalists, on_fresh)
    assert not picked.has_edge("x", "d") and len(picked.edges_of("spatial")) == 3
    assert len(means) == len(finalists) and means[0] == pytest.approx(0.6)
    tie, _ = await held_out_pick([finalists[0], chosen], lambda g: on_fresh(base))  # every graph scores alike
    assert tie is chosen  # a tie keeps the search's own choice


def test_a_held_out_pick_needs_problems_left_over() -> None:
    with pytest.raises(ag.ConfigError, match="select_holdout"):
        persuadable_trainer({}, select_holdout=100.0, select_problems=400.0)
    with pytest.raises(ag.ConfigError, match=r"select_holdout.*no selection"):
        persuadable_trainer({}, select_holdout=100.0, select_problems=0.0)


def test_the_held_out_pick_by_default_takes_what_the_training_set_has_left() -> None:
    assert persuadable_trainer({}).holdout_n == 200  # 400 problems, 200 to the search
    assert persuadable_trainer({}, select_problems=50.0).holdout_n == 150  # at most 3x the search's
    assert persuadable_trainer({}, select_problems=400.0).holdout_n == 0  # nothing left: no pick
    assert persuadable_trainer({}, select_problems=0.0).holdout_n == 0  # no search: nothing to pick
    assert persuadable_trainer({}, select_holdout=0.0).holdout_n == 0  # asked for none


def test_rollback_guard_restores_the_best_adapters() -> None:
    from agentgraph.train.guard import Rollback

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    guard = Rollback(drop=0.05, lr_factor=0.5)
    assert not guard.observe(0.40, 0, model, opt)  # the start is the first best
    best = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.ones(3)).sum().backward()
    opt.step()
    assert opt.state and not guard.observe(0.37, 5, model, opt)  # within the allowed drop: train on
    assert not torch.equal(model.weight, best["weight"])
    assert guard.observe(0.30, 10, model, opt)  # 0.10 below the best: back to it
    assert all(torch.equal(p, best[n]) for n, p in model.named_parameters())
    assert not opt.state and opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert not guard.observe(0.45, 15, model, opt) and guard.best == 0.45 and guard.rollbacks == [10]


def test_trim_log_drops_only_a_torn_last_line(tmp_path: Path) -> None:
    from agentgraph.train.loop import StepRecord, trim_log

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert [r.step for r in trim_log(log, StepRecord, 2)] == [1, 2]
    assert log.read_text() == '{"step":1}\n{"step":2}\n'
    log.write_text('{"step": 1}\nnot json\n{"step": 2}\n')  # damage in the middle is not a torn tail
    with pytest.raises(ValueError, match="line 2"):
        trim_log(log, StepRecord, 2)


async def test_graph_grpo_trains_a_mixed_team_unchanged(tmp_path: Path) -> None:
    from agentgraph.backends import GenerationRequest, Router

    seen: list[GenerationRequest] = []

    class Second(Scripted):
        async def generate(self, request: GenerationRequest) -> ag.backends.Completion:
            seen.append(request)
            return await super().generate(request)

    base = chain(3, memory=False)
    base.nodes["a2"]["model"] = "second"
    router = Router(
        {"first": Scripted(default=noisy, seed=3), "second": Second(default=calc, model="second")}
    )
    config = GraphGRPOConfig(group_size=2, steps=2, select_problems=0)
    t = GraphGRPOTrainer(
        base, arith("+", 2, 8, seed=0), router, config, make_team=lambda g: ag.Team(g, rounds=1)
    )
    pruned = await t.train()
    assert seen and {r.meta.agent for r in seen} == {"a2"}  # the second model served only its agent
    assert pruned.nodes["a2"]["model"] == "second"  # the trained graph keeps who runs on what


def persuasion_trainer(credit: str) -> GraphGRPOTrainer:
    """Root ``d`` is right when two of its inputs are: ``t`` always is, ``c`` is unless it reads the
    adversary ``x``, and ``v`` (also reachable from ``x``) has its vote cut beyond doubt."""
    from agentgraph.backends import ScriptedCall
    from agentgraph.eval.datasets import Problem

    def agent(call: ScriptedCall) -> str:
        seen = call.request.messages[-1].content
        if call.agent == "d":
            return "\\boxed{1}" if seen.count("\\boxed{1}") >= 2 else "\\boxed{0}"
        if call.agent == "x":
            return "\\boxed{0}"
        return "\\boxed{0}" if call.agent in "cv" and "\\boxed{0}" in seen else "\\boxed{1}"

    base = ag.Topology()
    base.add_agent("d", root=True)
    for a in "xtcv":
        base.add_agent(a)
    fixed = {("t", "d"): 20.0, ("c", "d"): 20.0, ("v", "d"): -20.0, ("x", "c"): 0.0, ("x", "v"): 0.0}
    for (u, v), logit in fixed.items():
        base.add_spatial(u, v, logit=logit)
    problems = [Problem(id=f"p{i}", question=f"question {i}", answer="1") for i in range(8)]
    config = GraphGRPOConfig(group_size=8, problems_per_step=2, credit=credit, select_problems=0, seed=1)
    t = GraphGRPOTrainer(
        base, problems, Scripted(default=agent), config, make_team=lambda g: ag.Team(g, rounds=1)
    )
    with torch.no_grad():
        t.logits.copy_(torch.tensor([fixed[(u, v)] for u, v, _ in t.edges]))
    return t


async def test_leave_one_out_credits_an_edge_with_the_difference_its_head_makes() -> None:
    moved: dict[str, dict[str, float]] = {}
    for credit in ("session", "leave-one-out"):
        t = persuasion_trainer(credit)
        before = t.logits.detach().clone()
        for _ in range(3):
            await t.train_step()
        moved[credit] = {
            f"{u}->{v}": float(d) for (u, v, _), d in zip(t.edges, t.logits.detach() - before, strict=True)
        }
    # x -> c makes c wrong and the root with it: both credits cut it
    assert moved["session"]["x->c"] < 0 and moved["leave-one-out"]["x->c"] < 0
    # x -> v changes a vote nobody counts: v makes no difference, so leave-one-out gives it exactly no
    # gradient, while the graph's outcome (driven by x -> c) lends it whatever its draws correlate with
    assert moved["leave-one-out"]["x->v"] == 0.0
    assert moved["session"]["x->v"] != 0.0


async def test_leave_one_out_runs_each_graph_again_without_each_credited_agent() -> None:
    t = persuasion_trainer("leave-one-out")
    assert t.left_out == ["c", "t", "v"]  # edges into the root credit their tails; the root is never left out
    batch, draws = t.draw_batch()
    without = await t.run_counterfactuals(batch, draws)
    assert [len(g) for g in without] == [8, 8]
    w = without[0][0]
    assert sorted(w) == ["c", "t", "v"] and all(r.session == "step0-p0-g0" for r in w.values())
    assert all(v not in {turn.agent for turn in r.turns} for v, r in w.items())
    with pytest.raises(ValueError, match="counterfactual"):
        t.update(draws, await t.run_batch(batch, draws))


def test_selection_also_starts_from_stars_of_the_most_probable_voters() -> None:
    # the learner leaves truthful -> truthful edges above the decision edge of t2; no nested graph is
    # the independent-voters graph, a star of the root is
    t = persuadable_trainer({"t0->decision": 3.0, "t0->t1": 2.5, "t1->decision": 2.0, "t2->decision": 1.0})
    nested = [set(g.edges_of("spatial")) for g in t.candidates()]
    stars = [set(g.edges_of("spatial")) for g in t.stars(t.candidates())]
    voters = {("t0", "decision"), ("t1", "decision"), ("t2", "decision")}
    assert voters not in nested
    assert stars == [{("t0", "decision")}, {("t0", "decision"), ("t1", "decision")}, voters]
    unrooted = voters_into_d("abc")
    unrooted.nodes["d"]["root"] = False
    plain = GraphGRPOTrainer(unrooted, arith("+", 2, 8, seed=0), Scripted(default=calc), GraphGRPOConfig())
    assert plain.stars(plain.candidates()) == []  # no marked root: no stars
