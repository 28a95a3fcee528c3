"""The structured comparison's parts that need no engine: the chain's cards and topology for
``--task multi``, and its per-step verifiable reward (``--team-reward step``) on a scripted chain."""

from __future__ import annotations

import argparse

import agentgraph as ag
from agentgraph.backends.scripted import Scripted, ScriptedCall
from examples.compare_training import make_task, running_values, step_reward


def task(operands: int) -> ag.Team:
    args = argparse.Namespace(task="multi", operands=operands, ops="+-*", digits=1, max_tokens=12)
    t = make_task(args)
    assert t.team_roles == tuple(f"step{k}" for k in range(1, operands))
    assert t.single_tokens == (operands - 1) * 12  # the single agent may spend the whole team's tokens
    return t.team(t.team_topology(), temperature=0.0)


def chain_agent(wrong_at: int | None) -> object:
    """Agent a{k} answers the running result after operation k + 1; at ``wrong_at`` it is off by one."""

    def agent(call: ScriptedCall) -> str:
        k = int(call.request.meta.agent.removeprefix("a"))
        value = running_values(call.request.meta.problem)[k]
        return str(value + 1 if k == wrong_at else value)

    return agent


async def test_each_agent_is_rewarded_for_its_own_step() -> None:
    team = task(operands=4)
    assert [a for a in team.topology.agents] == ["a0", "a1", "a2"]
    assert team.topology.edges_of("spatial") == [("a0", "a1"), ("a1", "a2")]
    problems = ag.eval.datasets.arith(ops="+-*", digits=1, operands=4, n=6, seed=3)
    for wrong_at, expected in ((None, [1.0, 1.0, 1.0]), (1, [1.0, 0.0, 1.0]), (2, [1.0, 1.0, 0.0])):
        results = await ag.solve_many(
            team, [p.question for p in problems], Scripted(default=chain_agent(wrong_at)),
            golds=[p.answer for p in problems],
        )  # fmt: skip
        for r in results:
            rewards = step_reward(r)
            assert [rewards[t.id] for t in r.agent_turns()] == expected
            assert r.correct is (wrong_at != 2)  # the tail decides: only its own error is final


async def test_the_chain_still_decides_when_a_sampled_graph_drops_an_edge() -> None:
    """Graph and joint training sample graphs without some edges: the last agent still decides."""
    args = argparse.Namespace(task="multi", operands=3, ops="+-", digits=1, max_tokens=12)
    t = make_task(args)
    g = t.team_topology()
    g.remove_edge("a0", "a1")
    assert g.edges_of("spatial") == []
    team = t.team(g, temperature=0.0)
    r = await ag.solve(team, "What is (3 + 8) - 4?", Scripted(default=chain_agent(None)), gold="7")
    assert r.decision.decider == "a1" and r.correct
