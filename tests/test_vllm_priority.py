"""Program-aware scheduling on the real engine: vLLM's priority scheduler runs the older session's
request first, though a newer session's request was queued before it."""

from __future__ import annotations

import asyncio

import pytest

from agentgraph.backends import VLLM, GenerationRequest, RequestMeta
from agentgraph.core.messages import ChatMessage
from agentgraph.core.sampling import Sampling
from tests.conftest import GPU_SHARE

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]


def ask(session: str, n: int, rid: str) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage(role="user", content="Count from 1 to 100."),),
        sampling=Sampling(temperature=0.0, max_tokens=n),
        meta=RequestMeta(session=session, agent="a0", role="solver"),
        request_id=rid,
    )


async def test_session_age_runs_the_older_sessions_request_first() -> None:
    # one sequence at a time, so the queue's order is the order requests finish in
    async with VLLM(
        max_model_len=512,
        kv_cache_gib=1,
        max_num_seqs=1,
        scheduling="session-age",
        gpu_memory_utilization=GPU_SHARE,
    ) as e:
        assert e.engine_args()[0].scheduling_policy == "priority"
        await e.generate(ask("old", 1, "old-0"))  # the backend meets "old" first, then "new"
        await e.generate(ask("new", 1, "new-0"))
        finished: list[str] = []

        async def run(session: str, n: int, rid: str) -> None:
            await e.generate(ask(session, n, rid))
            finished.append(rid)

        blocker = asyncio.ensure_future(run("old", 96, "old-busy"))  # holds the engine's one slot
        await asyncio.sleep(0.3)
        newer = asyncio.ensure_future(run("new", 4, "new-1"))  # queued first
        await asyncio.sleep(0.1)
        older = asyncio.ensure_future(run("old", 4, "old-1"))  # queued second, older session
        await asyncio.gather(blocker, newer, older)
    assert finished == ["old-busy", "old-1", "new-1"]
