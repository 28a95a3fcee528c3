"""Shared fixtures. Real vLLM tests share one in-process engine per test session.

vLLM tests run by default (CI installs the CPU build). ``AGENTGRAPH_SKIP_VLLM=1`` skips them
explicitly — never silently.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from agentgraph.backends import VLLM


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("AGENTGRAPH_SKIP_VLLM") == "1":
        skip = pytest.mark.skip(reason="AGENTGRAPH_SKIP_VLLM=1")
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(skip)


ON_GPU = importlib.util.find_spec("torch") is not None and __import__("torch").cuda.is_available()
GPU_SHARE = 0.2
"""On a GPU every engine of a test session takes this share of its memory, so the shared engine, the
LoRA engine, the tiny-model engine and two `vllm serve` fleet members can all start (on CPU it is
unused: the KV cache is sized in GiB)."""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine() -> AsyncIterator[VLLM]:
    async with VLLM(max_model_len=2048, kv_cache_gib=2, seed=0, gpu_memory_utilization=GPU_SHARE) as e:
        yield e
