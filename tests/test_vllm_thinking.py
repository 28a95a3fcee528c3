"""Reasoning turns on the real engine: the embedded model behind a chat template that opens a think
block (as R1 distills' templates do), and a tiny random-weight Qwen2 model for presets and engine
settings read back from the running engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import VLLM
from agentgraph.core.thinking import detect
from agentgraph.roles.presets import choose
from tests.conftest import GPU_SHARE

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]

THINK_TEMPLATE = Path(__file__).parent.parent / "examples" / "chat_templates" / "chatml-think.jinja"


@pytest.fixture
def thinking_engine(engine: VLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[VLLM]:
    """The session's engine, rendering prompts with the think template (no second engine on 2 cores)."""
    template = THINK_TEMPLATE.read_text()
    monkeypatch.setattr(engine, "chat_template", template)
    monkeypatch.setattr(engine, "think_format", detect(engine._tokenizer, template))
    yield engine


async def test_think_markers_are_detected_from_the_template(thinking_engine: VLLM) -> None:
    fmt = thinking_engine.think_format
    assert fmt is not None and fmt.opened_by_template and fmt.close == "</think>"


async def test_budget_forcing_on_the_real_engine(thinking_engine: VLLM) -> None:
    budget = 24
    sampling = ag.SamplingOverrides(temperature=0.0, thinking_budget=budget, answer_tokens=12, max_tokens=64)
    team = ag.Team(ag.full(2), rounds=2, sampling=sampling)
    r = await ag.solve(team, "What is 12 + 30?", thinking_engine, gold="42")
    tok = thinking_engine._tokenizer
    for t in r.turns:
        # concluded and parseable; the thinking never went past its budget
        assert t.thinking_closed and t.thinking_tokens <= budget and t.answer is not None, t.text
        assert t.requests == 2 and t.forced_tokens > 0
        assert len(t.completion_token_ids) == t.completion_tokens + t.forced_tokens
    # share: final — what the engine received in round 1 holds no peer's thinking
    round0 = {t.agent: t for t in r.turns if t.round == 0}
    for t in (t for t in r.turns if t.round == 1):
        prompt = tok.decode(t.prompt_token_ids)
        for peer in round0.values():
            thought = peer.thinking.removesuffix("</think>").strip()
            if len(thought) >= 12:
                assert thought not in prompt
            assert peer.final.strip()[-12:] in prompt  # the conclusion is what is shared
    assert r.usage.thinking_tokens == sum(t.thinking_tokens for t in r.turns) > 0


def _tiny_r1(root: Path) -> Path:
    """A 2-layer random-weight Qwen2 model with the embedded tokenizer and an R1-style template;
    its directory name selects the r1-distill preset."""
    from agentgraph.testing.tiny import tiny_model

    return Path(
        tiny_model(
            root,
            name="tiny-R1-Distill-Qwen",
            chat_template=THINK_TEMPLATE.read_text(),
            max_positions=1024,
            tie_word_embeddings=True,
        )
    )


async def test_engine_settings_reach_the_running_engine(tmp_path: Path) -> None:
    model = _tiny_r1(tmp_path)
    backend = ag.backends.create(
        "vllm",
        model=str(model),
        max_model_len=512,
        engine={
            "gpu_memory_utilization": GPU_SHARE,
            "tensor_parallel_size": 1,
            "data_parallel_size": 1,
            "dtype": "float32",
            "enforce_eager": True,
            "max_num_seqs": 8,
            "kv_cache_dtype": "auto",
            "kv_cache_gib": 1,
            "log_file": tmp_path / "engine.log",
        },
        engine_args=["max_num_batched_tokens=1024", "enable_chunked_prefill=true"],
    )
    preset = choose("auto", str(model))
    assert preset.name == "r1-distill"
    async with backend:
        assert isinstance(backend, VLLM)
        cfg = backend.engine.vllm_config  # read back from the running engine, not from our objects
        assert cfg.model_config.max_model_len == 512
        assert cfg.model_config.enforce_eager is True
        assert str(cfg.model_config.dtype) == "torch.float32"
        assert cfg.scheduler_config.max_num_seqs == 8
        assert cfg.scheduler_config.max_num_batched_tokens == 1024
        assert cfg.scheduler_config.enable_chunked_prefill is True
        assert cfg.parallel_config.tensor_parallel_size == 1 and cfg.parallel_config.data_parallel_size == 1
        assert cfg.cache_config.gpu_memory_utilization == GPU_SHARE
        assert cfg.cache_config.cache_dtype == "auto"
        # the template opens the think block; the preset leaves no system turn
        assert backend.think_format is not None and backend.think_format.opened_by_template
        sampling = ag.SamplingOverrides(max_tokens=32, thinking_budget=8, answer_tokens=8)
        team = ag.Team(ag.single(), rounds=1, preset=preset, sampling=sampling)
        r = await ag.solve(team, "What is 1 + 1?", backend)
        (t,) = r.turns
        prompt = backend._tokenizer.decode(t.prompt_token_ids)
        assert "<|im_start|>system" not in prompt and "within \\boxed{}" in prompt
        assert t.thinking_tokens <= 8 and t.thinking_closed
    assert (tmp_path / "engine.log").read_text().strip(), "the engine wrote nothing to its log file"
