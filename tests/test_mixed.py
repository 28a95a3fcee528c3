"""Teams of different models on the scripted backend: every agent's model is honoured or refused."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import GenerationRequest, Router, Scripted, ScriptedCall
from agentgraph.cli import main
from agentgraph.core.errors import ConfigError, RequestRejected
from agentgraph.core.thinking import ThinkFormat
from agentgraph.roles.presets import choose

BIG, SMALL = "org/big-7b", "org/Qwen3-1.7B"


def answer(value: str):  # type: ignore[no-untyped-def]
    def agent(call: ScriptedCall) -> str:
        return f"I am on {call.request.model}. \\boxed{{{value}}}"

    return agent


def solver_and_critic(critic_model: str | None = SMALL) -> ag.Topology:
    g = ag.Topology(name="mixed")
    g.add_agent("s0", "solver")
    g.add_agent("s1", "solver")
    g.add_agent("c", "critic", model=critic_model)
    g.add_spatial("s0", "c")
    g.add_spatial("s1", "c")
    return g


class Recording(Scripted):
    """A scripted backend that keeps every request it was sent."""

    def __init__(self, value: str, model: str) -> None:
        super().__init__(default=answer(value), model=model)
        self.seen: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> ag.backends.Completion:
        self.seen.append(request)
        return await super().generate(request)


async def test_each_model_serves_only_its_own_agents_and_usage_is_split_by_model() -> None:
    big, small = Recording("4", BIG), Recording("5", SMALL)
    router = Router({BIG: big, SMALL: small})
    team = ag.Team(solver_and_critic(), rounds=2)
    async with router:
        r = await ag.solve(team, "What is 2 + 2?", router)
    assert {q.meta.agent for q in big.seen} == {"s0", "s1"}
    assert {q.meta.agent for q in small.seen} == {"c"}
    by = {t.agent: t for t in r.turns}
    assert by["c"].model == SMALL and by["s0"].model is None and by["c"].answer == "5"
    # tokens by model are the sums of what each backend served
    assert r.usage_by_model["default"].prompt_tokens == sum(
        t.prompt_tokens for t in r.turns if t.model is None
    )
    assert r.usage_by_model[SMALL].completion_tokens == sum(
        t.completion_tokens for t in r.turns if t.agent == "c"
    )
    assert router.requests == {BIG: 4, SMALL: 2}


async def test_the_model_is_chosen_agent_then_role_models_then_card_then_team() -> None:
    g = solver_and_critic(critic_model=None)
    g.nodes["s1"]["model"] = BIG
    cards = ag.RoleBook.default()
    critic = cards["critic"].model_copy(update={"model": "card-model"})
    team = ag.Team(g, roles=cards.with_roles(critic), model="team-model", role_models={"solver": SMALL})
    assert team.model_of("s1", team.role("s1")) == BIG  # the agent's own
    assert team.model_of("s0", team.role("s0")) == SMALL  # its role's in role_models
    assert team.model_of("c", team.role("c")) == "card-model"  # the card's model:
    plain = ag.Team(ag.full(2), model="team-model")
    assert plain.models() == ["team-model"]


async def test_an_agent_whose_model_nobody_serves_is_refused_before_any_request() -> None:
    big = Recording("4", BIG)
    with pytest.raises(ConfigError, match=r"agent c runs on 'org/Qwen3-1.7B'"):
        await ag.solve(ag.Team(solver_and_critic()), "What is 2 + 2?", big)
    assert big.seen == []


async def test_a_one_model_backend_refuses_a_request_for_another_model() -> None:
    with pytest.raises(RequestRejected, match="model"):
        await Scripted(model=BIG).generate(GenerationRequest(model=SMALL))


def test_role_models_for_a_role_the_team_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match="role_models: the team has no agent of role 'judge'"):
        ag.Team(solver_and_critic(), role_models={"judge": BIG})


async def test_each_model_gets_its_own_preset() -> None:
    qwen3 = choose("auto", SMALL)
    assert qwen3.name == "qwen3"
    team = ag.Team(solver_and_critic(), presets={SMALL: qwen3})
    assert team.sampling_for("c", team.role("c")).top_k == 20  # Qwen3's authors' setting
    assert team.sampling_for("s0", team.role("s0")).top_k is None  # the default model keeps its own
    assert qwen3.instruction_suffix in team.role("c").instruction
    assert qwen3.instruction_suffix not in team.role("s0").instruction


async def test_a_forced_think_format_that_a_models_template_contradicts_is_refused() -> None:
    r1 = ThinkFormat(open="<think>", close="</think>")
    other = ThinkFormat(open="<reasoning>", close="</reasoning>")
    router = Router(
        {BIG: Scripted(think_format=r1, model=BIG), SMALL: Scripted(think_format=other, model=SMALL)}
    )
    team = ag.Team(solver_and_critic(), think="<think>,</think>")
    with pytest.raises(ConfigError, match=r"think: org/Qwen3-1\.7B marks thinking with <reasoning>"):
        await ag.solve(team, "What is 2 + 2?", router)
    # left to auto, each model keeps its own markers
    r = await ag.solve(ag.Team(solver_and_critic()), "What is 2 + 2?", router)
    assert r.failure is None


async def test_saved_agent_models_load_back_and_route_the_same(tmp_path: Path) -> None:
    p = tmp_path / "mixed.json"
    solver_and_critic().save(p)
    g = ag.Topology.load(p)
    assert g.nodes["c"]["model"] == SMALL
    big, small = Recording("4", BIG), Recording("5", SMALL)
    await ag.solve(ag.Team(g, rounds=1), "What is 2 + 2?", Router({BIG: big, SMALL: small}))
    assert Counter(q.meta.agent for q in small.seen) == Counter({"c": 1})


def test_cli_role_model_runs_the_role_on_its_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topo = tmp_path / "mixed.json"
    topo.write_text(solver_and_critic(critic_model=None).to_json())
    t = tmp_path / "t.jsonl"
    argv = ["run", "What is 12 + 30?", "--topology", str(topo), "--backend", "scripted"]
    argv += ["--scripted", "tests.agents:calc", "--model", BIG, "--role-model", f"critic={SMALL}"]
    assert main([*argv, "--transcript", str(t), "--json"]) == 0
    (s,) = ag.load(t).values()
    assert {x.agent: x.model for x in s.turns if x.round == 0} == {"s0": None, "s1": None, "c": SMALL}
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--role-model", "judge=org/x"], "role_models: the team has no agent of role 'judge'"),
        (["--role-model", "critic"], "role_model: 'critic' is not ROLE=MODEL"),
    ],
)
def test_cli_bad_role_models_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    topo = tmp_path / "mixed.json"
    topo.write_text(solver_and_critic(critic_model=None).to_json())
    out = tmp_path / "t.jsonl"
    argv = ["run", "What is 1 + 1?", "--topology", str(topo), "--backend", "scripted"]
    code = main([*argv, "--scripted", "tests.agents:calc", "--transcript", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_an_agent_model_served_by_no_backend_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topo = tmp_path / "mixed.json"
    topo.write_text(solver_and_critic().to_json())  # the critic names a model no backend serves
    out = tmp_path / "t.jsonl"
    argv = ["run", "What is 1 + 1?", "--topology", str(topo), "--backend", "scripted"]
    code = main([*argv, "--scripted", "tests.agents:calc", "--transcript", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "agent c runs on 'org/Qwen3-1.7B'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_shapes_and_baselines_keep_the_role_models_of_their_own_roles() -> None:
    from agentgraph.shapes.build import self_consistency_like

    team = ag.Team(solver_and_critic(), role_models={"critic": SMALL, "solver": BIG})
    sc = self_consistency_like(team, 3)  # solvers only: the solvers' model, no critic to place
    assert {sc.model_of(a, sc.role(a)) for a in sc.agents} == {BIG}
    cascade = ag.shape("cascade:sc:2+full:2", role_models={"solver": BIG})
    assert {cascade.model_of(a, cascade.role(a)) for a in cascade.agents} == {BIG}
    with pytest.raises(ConfigError, match="role_models"):
        ag.shape("cascade:sc:2+full:2", role_models={"critic": BIG})
