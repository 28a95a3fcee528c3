"""Records built without a second validation (:mod:`agentgraph.core.records`) are the records
validation would have built: same values, same field order, same JSON, for every kind of turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted
from agentgraph.core.messages import Turn, Usage
from agentgraph.core.records import trusted
from agentgraph.core.thinking import ThinkFormat
from agentgraph.engine.transcript import SessionResult
from agentgraph.graph.generators import chain, full
from agentgraph.testing.faulty import Faulty

R1 = ThinkFormat("<think>", "</think>", opened_by_template=True)


def agent(call: Any) -> str:
    r = call.rng.random()
    return f"Checked. \\boxed{{{int(r * 3)}}}" if r < 0.8 else "no answer"


def thinker(call: Any) -> str:
    return "let me think " * 30 + "</think> so \\boxed{4}"


async def results() -> list[SessionResult]:
    problems = [f"What is {i} + 1?" for i in range(4)]
    runs = [
        (ag.Team(full(3), rounds=2), Scripted(default=agent)),
        (ag.Team(full(3), rounds=2, inter_round="summarize", decision="judge"), Scripted(default=agent)),
        (
            ag.Team(full(4), rounds=3, inter_round="partial:2:agreement", early_stop=True),
            Scripted(default=agent),
        ),
        (
            ag.Team(chain(3), rounds=1),
            Faulty(Scripted(default=agent), seed=1, fail_agents={"a1"}, error_rate=0.3, garbage_rate=0.2),
        ),
        (
            ag.Team(full(2), rounds=1, sampling=ag.SamplingOverrides(thinking_budget=8, answer_tokens=8)),
            Scripted(default=thinker, think_format=R1),
        ),
        (ag.Team(full(2), rounds=1), Scripted(default=thinker, think_format=R1)),
        (ag.Team(full(2), rounds=1, sampling=ag.SamplingOverrides(logprobs=True)), Scripted(default=agent)),
    ]
    out: list[SessionResult] = []
    for team, backend in runs:
        out += await ag.solve_many(team, problems, backend, golds=["1", "2", "3", "4"])
    return out


def twin(record: Any) -> Any:
    return type(record).model_validate(record.model_dump())


def test_every_record_of_a_run_equals_its_validated_twin() -> None:
    rs = asyncio.run(results())
    turns = [t for r in rs for t in r.turns]
    # the kinds of turn the runs were chosen for are all there
    assert {t.kind for t in turns} >= {"agent", "summary", "judge"}
    assert any(t.error for t in turns) and any(t.failed_attempts and t.ok for t in turns)
    assert any(t.thinking_chars and t.forced_tokens for t in turns)
    assert any(t.thinking_chars and not t.forced_tokens for t in turns)
    assert any(t.logprobs for t in turns) and any(t.read for t in turns)
    for record in [*rs, *turns]:
        again = twin(record)
        assert again == record
        assert again.model_dump_json() == record.model_dump_json()  # field order included


def test_trusted_fills_defaults_with_fresh_objects_and_refuses_what_validation_would() -> None:
    a = trusted(Turn, {"id": "s:r0:a0", "session": "s", "agent": "a0", "role": "solver", "round": 0})
    b = trusted(Turn, {"id": "s:r0:a1", "session": "s", "agent": "a1", "role": "solver", "round": 0})
    assert a == Turn(id="s:r0:a0", session="s", agent="a0", role="solver", round=0)
    assert a.read == [] and a.read is not b.read  # a factory default is made per record
    assert a.model_fields_set == {"id", "session", "agent", "role", "round"}
    with pytest.raises(TypeError, match="no field 'rnd'"):
        trusted(Turn, {"id": "x", "session": "s", "agent": "a0", "role": "solver", "rnd": 0})
    with pytest.raises(TypeError, match="needs field 'round'"):
        trusted(Turn, {"id": "x", "session": "s", "agent": "a0", "role": "solver"})
    assert trusted(Usage, {"prompt_tokens": 2}).total_tokens == 2
