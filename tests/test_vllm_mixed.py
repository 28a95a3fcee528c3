"""A team of two real models in one process: the embedded SmolLM2 and a tiny random-weight Qwen2 with
its own chat template (an R1-style one that opens a think block)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import agentgraph as ag
from agentgraph.backends import VLLM, Router
from agentgraph.testing.tiny import tiny_model
from tests.conftest import GPU_SHARE

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]

THINK_TEMPLATE = Path(__file__).parent.parent / "examples" / "chat_templates" / "chatml-think.jinja"
TINY = "tiny"


def tiny_dir(root: Path) -> str:
    return tiny_model(
        root,
        name="tiny-think-qwen2",
        chat_template=THINK_TEMPLATE.read_text(),
        max_positions=1024,
        tie_word_embeddings=True,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tiny_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[VLLM]:
    path = tiny_dir(tmp_path_factory.mktemp("tiny"))
    async with VLLM(path, max_model_len=1024, kv_cache_gib=1, seed=0, gpu_memory_utilization=GPU_SHARE) as e:
        yield e


def mixed_team(**settings: object) -> ag.Team:
    g = ag.Topology(name="mixed")
    g.add_agent("s0", "solver")
    g.add_agent("s1", "solver")
    g.add_agent("c", "critic", model=TINY)
    g.add_spatial("s0", "c")
    g.add_spatial("s1", "c")
    sampling = ag.SamplingOverrides(temperature=0.0, max_tokens=24)
    return ag.Team(g, rounds=2, sampling=sampling, **settings)  # type: ignore[arg-type]


async def test_two_engines_each_serve_their_own_agents_with_their_own_template(
    engine: VLLM, tiny_engine: VLLM
) -> None:
    router = Router({"embedded": engine, TINY: tiny_engine})  # both started: no second start here
    before = {"default": dict(engine.counters), TINY: dict(tiny_engine.counters)}
    prom = VLLM.engine_counters(tiny_engine.model_path)
    r = await ag.solve(mixed_team(think="none"), "What is 12 + 30?", router, gold="42")
    assert r.failure is None and r.errors == 0
    assert router.requests == {"embedded": 4, TINY: 2}
    for t in r.turns:
        own = tiny_engine if t.agent == "c" else engine
        # the ids the engine ran are its own template's rendering of the turn's messages
        prompt = own._tokenizer.decode(t.prompt_token_ids)
        if t.agent == "c":
            assert t.model == TINY and prompt.endswith("<|im_start|>assistant\n<think>\n")
        else:
            assert t.model is None and "<think>" not in prompt
    # tokens by model are what each engine ran; the engine started last also keeps vLLM's own
    # Prometheus counters (a second engine in a process unregisters the first one's)
    want = r.usage_by_model
    for name, backend in (("default", engine), (TINY, tiny_engine)):
        ran = {k: backend.counters[k] - before[name][k] for k in backend.counters}
        assert ran == {
            "prompt_tokens": want[name].prompt_tokens,
            "generation_tokens": want[name].completion_tokens,
            "requests": want[name].requests,
        }
    p0, c0 = prom.get("vllm:prompt_tokens", 0), prom.get("vllm:generation_tokens", 0)
    for _ in range(50):
        now = VLLM.engine_counters(tiny_engine.model_path)
        got = (now.get("vllm:prompt_tokens", 0) - p0, now.get("vllm:generation_tokens", 0) - c0)
        if got == (want[TINY].prompt_tokens, want[TINY].completion_tokens):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError((got, want[TINY]))


async def test_each_model_keeps_its_own_think_markers(engine: VLLM, tiny_engine: VLLM) -> None:
    # think auto: the tiny model's template opens <think> and its agent has a budget (forced, then
    # concluded); the embedded model's template marks none, so its agents answer in one request
    router = Router({"embedded": engine, TINY: tiny_engine})
    team = mixed_team()
    g = team.topology.copy()
    g.nodes["c"]["sampling"] = ag.SamplingOverrides(thinking_budget=8, answer_tokens=8)
    r = await ag.solve(team.replace(topology=g), "What is 1 + 2?", router)
    for t in r.turns:
        if t.agent == "c":
            assert t.requests == 2 and t.thinking_tokens <= 8 and t.thinking_closed, t.text
            assert t.forced_tokens > 0 or "</think>" in t.text
        else:
            assert t.requests == 1 and t.thinking_chars == 0 and t.thinking_tokens == 0
    assert tiny_engine.think_format is not None and engine.think_format is None


async def test_role_grpo_on_a_two_model_team_publishes_each_base_to_its_engine(tmp_path: Path) -> None:
    from agentgraph.train import MixedRoleGRPOTrainer, RoleGRPOConfig, role_trainer
    from examples.train_roles_arith import additions, make_team

    tiny = tiny_dir(tmp_path)
    backend = ag.backends.create(
        "vllm",
        max_model_len=1024,
        models=[tiny],
        lora_rank=8,
        policy_tokens=True,
        engine={"kv_cache_gib": 1, "gpu_memory_utilization": GPU_SHARE, "log_file": tmp_path / "engine.log"},
    )
    team = make_team().replace(role_models={"checker": tiny})
    config = RoleGRPOConfig(
        train_roles=("adder", "checker"), group_size=2, problems_per_step=2, steps=1, lora_r=8, lora_alpha=16,
        learning_rate=1e-3, max_completion_length=8, eval_every=1,
    )  # fmt: skip
    async with backend:
        assert isinstance(backend, Router)
        t = role_trainer(
            team, additions(8, 0), backend, config, heldout=additions(2, 9), out=tmp_path / "run"
        )
        assert isinstance(t, MixedRoleGRPOTrainer)
        log = await t.train()
        default, second = backend.backends["default"], backend.backends[tiny]
        assert isinstance(default, VLLM) and isinstance(second, VLLM)
        # each engine loaded only the adapters of the roles that run on it
        assert {n.split("@")[0] for n in default._lora_ids} == {"adder"}
        assert {n.split("@")[0] for n in second._lora_ids} == {"checker"}
    # whether a group of 2 has reward variance (turns that enter the loss) is up to sampling; that both
    # policies step on it is shown on the scripted backend (tests/test_train_roles.py)
    assert log[-1].heldout_accuracy is not None and log[-1].tokens > 0
    assert (tmp_path / "run" / "bases" / "tiny-think-qwen2" / "adapters.json").is_file()
