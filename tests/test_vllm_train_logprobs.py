"""The trainer's log-probs are the engine's: at step 0 (adapters that are still the base model) the
trainer scores vLLM's sampled tokens as vLLM sampled them, at T = 1.0 and at T = 0.7 with top-p 0.9.

vLLM reports the processed distribution (``logprobs_mode="processed_logprobs"``, what
``backends.create(..., policy_tokens=True)`` asks for); the trainer applies the same temperature and
nucleus (:mod:`agentgraph.train.logprobs`). Measured on the embedded model in float32 on this CPU:
mean |π_trainer/π_engine − 1| = 1.6e-5 at T = 1.0 and 4.5e-6 at T = 0.7 / top-p 0.9 (kernel
differences only); we assert < 2e-3. Scoring
the T = 0.7 / top-p 0.9 samples without the nucleus and temperature (what a trainer that ignores the
sampling settings does) is off by far more, which the test also checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import torch

import agentgraph as ag
from agentgraph.backends import VLLM, GenerationRequest
from agentgraph.core.models import provision
from agentgraph.train import RoleGRPOConfig
from agentgraph.train.policies.lora import LoRAPolicy, Sample
from tests.conftest import GPU_SHARE

pytestmark = pytest.mark.vllm
TOL = 2e-3


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine() -> AsyncIterator[VLLM]:
    async with VLLM(
        kv_cache_gib=1,
        max_model_len=512,
        dtype="float32",
        gpu_memory_utilization=GPU_SHARE,
        engine_kwargs={"logprobs_mode": "processed_logprobs"},
    ) as e:
        yield e


async def sample(engine: VLLM, temperature: float, top_p: float) -> list[Sample]:
    questions = ["What is 17 + 25?", "Name a prime number above 50.", "What is 3 times 14?"]
    s = ag.Sampling(temperature=temperature, top_p=top_p, max_tokens=24, logprobs=True)
    outs = await asyncio.gather(
        *(
            engine.generate(GenerationRequest(messages=(ag.ChatMessage(role="user", content=q),), sampling=s))
            for q in questions
            for _ in range(4)
        )
    )
    samples = []
    for o in outs:
        assert o.logprobs is not None and len(o.logprobs) == len(o.token_ids)
        samples.append(Sample("solver", list(o.prompt_token_ids), list(o.token_ids), list(o.logprobs), 1.0))
    return samples


def mismatch(samples: list[Sample], temperature: float, top_p: float) -> float:
    config = RoleGRPOConfig(train_roles=("solver",), temperature=temperature, top_p=top_p, lora_r=2)
    policy = LoRAPolicy(provision(), config)
    with torch.no_grad():
        logps, mask = policy.logps(samples)
    engine = torch.zeros_like(logps)
    for i, s in enumerate(samples):
        assert s.old_logps is not None
        engine[i, : len(s.old_logps)] = torch.tensor(s.old_logps)
    ratio = torch.exp(logps - engine)
    return float(((ratio - 1).abs() * mask).sum() / mask.sum())


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9)])
async def test_trainer_scores_what_the_engine_sampled(engine: VLLM, temperature: float, top_p: float) -> None:
    samples = await sample(engine, temperature, top_p)
    got = mismatch(samples, temperature, top_p)
    print(f"T={temperature} top_p={top_p}: mean |ratio - 1| = {got:.2e}")
    assert got < TOL
    if top_p < 1.0:
        assert mismatch(samples, 1.0, 1.0) > 20 * TOL  # ignoring the sampling settings is caught
