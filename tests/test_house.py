"""The defects the second restructure removed, each pinned by a test that failed before it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.core.errors import AgentGraphError, BackendError, ConfigError, RequestRejected
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.graph.specs import from_spec
from agentgraph.roles.book import CARDS_DIR, RoleBook
from agentgraph.roles.presets import Preset
from agentgraph.shapes.build import shape, team_of
from agentgraph.team.config import TeamConfig

ROOT = Path(__file__).resolve().parent.parent


def calc(call: ScriptedCall) -> str:
    """Right most of the time, seeded per (session, agent, round): shapes that vote differ from one
    sample, and graders give parseable scores."""
    if call.request.meta.role == "grader":
        return f"\\boxed{{{call.rng.randint(0, 10)}}}"
    a, b = (int(x) for x in call.problem.split("What is ")[1].rstrip("?").split(" + "))
    return f"\\boxed{{{a + b if call.rng.random() < 0.7 else a + b + 1}}}"


PROBLEMS = [f"What is {i} + {i + 3}?" for i in range(6)]


def test_an_explicit_share_final_wins_over_the_preset() -> None:
    preset = Preset(name="reads-all", source="test", share="full")
    assert ag.Team(ag.full(2), preset=preset).share == "full"  # not set: the preset's
    assert ag.Team(ag.full(2), preset=preset, share="final").share == "final"  # set: the user's
    assert ag.Team(ag.full(2)).share == "final"  # neither: final


def test_team_replace_changes_a_copy_and_checks_it() -> None:
    team = ag.Team(ag.full(3), rounds=2, sampling=SamplingOverrides(thinking_budget=64))
    other = team.replace(rounds=3)
    assert (team.rounds, other.rounds) == (2, 3)
    assert other.sampling is not None and other.sampling.thinking_budget == 64
    with pytest.raises(ConfigError, match="rounds"):
        team.replace(rounds=0)
    with pytest.raises(ConfigError, match="colour: is not a team setting"):
        ag.Team(ag.full(3), colour="red")
    assert all(TeamConfig.help(n) for n in TeamConfig.names())  # help on every field


def test_trainer_sampling_is_laid_over_the_teams_own() -> None:
    team = SamplingOverrides(thinking_budget=(64, 256), answer_tokens=32, temperature=0.2)
    rollout = SamplingOverrides(temperature=1.0, max_tokens=16, logprobs=True).over(team)
    assert (rollout.thinking_budget, rollout.answer_tokens) == ((64, 256), 32)
    assert (rollout.temperature, rollout.max_tokens, rollout.logprobs) == (1.0, 16, True)


@pytest.mark.parametrize(
    "spec", ["sc:5", "bon:4", "beam:2x2", "cascade:sc:2+full:3", "cascade:sc:2+beam:2x2x1", "full:3"]
)
async def test_a_saved_shape_loads_back_and_runs_the_same_sessions(spec: str, tmp_path: Path) -> None:
    team = shape(spec, rounds=2)
    path = team.topology.save(tmp_path / "team.json")
    loaded = team_of(from_spec(str(path)))
    assert loaded.describe() == team.describe()
    assert loaded.topology.graph == team.topology.graph
    assert loaded.topology.same_as(team.topology)
    ids = [f"s{i}" for i in range(len(PROBLEMS))]
    a = await ag.solve_many(team, PROBLEMS, Scripted(default=calc, seed=3), session_ids=ids)
    b = await ag.solve_many(loaded, PROBLEMS, Scripted(default=calc, seed=3), session_ids=ids)
    assert [r.answer for r in a] == [r.answer for r in b]
    assert [[(t.agent, t.round, t.text) for t in r.turns] for r in a] == [
        [(t.agent, t.round, t.text) for t in r.turns] for r in b
    ]
    assert shape(str(path)).describe() == team.describe()  # the CLI's path: a .json spec


def test_a_beam_keeps_its_grader_role(tmp_path: Path) -> None:
    card = (CARDS_DIR / "grader.yaml").read_text().replace("name: grader", "name: strict")
    (tmp_path / "strict.yaml").write_text(card)
    roles = RoleBook.default().with_cards(tmp_path / "strict.yaml")
    g = ag.beam(2, 2, grader="strict")
    loaded = ag.Topology.load(g.save(tmp_path / "b.json"))
    strategy = team_of(loaded, roles=roles).strategy
    assert isinstance(strategy, ag.Beam) and strategy.grader == "strict"


def test_a_users_roles_folder_does_not_shadow_the_built_in_cards(tmp_path: Path) -> None:
    (tmp_path / "roles" / "cards").mkdir(parents=True)
    (tmp_path / "roles" / "__init__.py").write_text("")
    (tmp_path / "roles" / "cards" / "solver.yaml").write_text("name: solver\nsystem_prompt: hijacked\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import roles; "
        "from agentgraph.roles.book import RoleBook, CARDS_DIR; "
        "print(CARDS_DIR); print(RoleBook.default()['solver'].system_prompt)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.splitlines()
    assert Path(out[0]) == CARDS_DIR and CARDS_DIR.is_relative_to(ROOT / "agentgraph")
    assert out[1] == RoleBook.default()["solver"].system_prompt != "hijacked"


def test_show_imports_no_torch() -> None:
    code = (
        "import sys; from agentgraph.cli import main; "
        "rc = main(['show', 'full:3', '--json']); "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]; "
        "sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"agents"' in done.stdout or "full:3" in done.stdout


class Unmeasured(Scripted):
    """A backend that cannot measure prompts before sending them (as a fleet without a tokenizer),
    so only the backend's own check when it serves the request finds the over-long one."""

    def count_prompt_tokens(self, request: ag.backends.GenerationRequest) -> int | None:
        return None


async def test_one_over_long_request_fails_its_session_only() -> None:
    long = "What is 1 + 2? " + "Consider this carefully. " * 200 + "What is 1 + 2?"
    problems = [PROBLEMS[0], long, PROBLEMS[1]]
    backend = Unmeasured(default=calc, seed=0, max_context=400)
    team = ag.Team(ag.full(2), rounds=1)
    results = await ag.solve_many(team, problems, backend, golds=["3", "3", "5"])
    assert [r.failure is not None for r in results] == [False, True, False]
    assert results[1].failure is not None and "request rejected" in results[1].failure
    assert results[1].answer is None and all(r.answer is not None for r in (results[0], results[2]))
    with pytest.raises(RequestRejected):  # on_error="raise" still raises
        await ag.solve(team.replace(on_error="raise"), long, backend)


def test_every_error_has_one_base() -> None:
    from agentgraph.core.errors import SessionOverflow
    from agentgraph.serve.server import ApiError

    for cls in (ConfigError, BackendError, RequestRejected, SessionOverflow, ApiError):
        assert issubclass(cls, AgentGraphError), cls


def test_scripted_backend_refuses_a_prompt_over_its_context() -> None:
    import asyncio

    backend = Scripted(default=calc, max_context=20)
    team = ag.Team(ag.single(), rounds=1)
    with pytest.raises(ConfigError, match="over the context"):  # measured before any request
        asyncio.run(ag.solve(team, "What is 1 + 2? " * 30, backend))


def test_built_in_cards_are_package_data() -> None:
    assert {p.stem for p in CARDS_DIR.glob("*.yaml")} >= {"solver", "critic", "grader", "judge"}


def test_trainer_flags_take_the_config_field_names_too() -> None:
    from agentgraph.cli.parser import build_parser, resolve_options

    parser = build_parser()
    short = resolve_options(parser.parse_args(["train", "roles", "--group", "3", "--lr", "0.001"]))
    long = resolve_options(
        parser.parse_args(["train", "roles", "--group-size", "3", "--learning-rate", "0.001"])
    )
    assert short == long
    assert short.group == 3 and short.lr == 0.001  # type: ignore[attr-defined]
