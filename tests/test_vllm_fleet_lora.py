"""Training against a real ``vllm serve`` fleet: after a step every server serves the new adapter, and a
server that missed it is not used for it until it has it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from agentgraph.backends import OpenAI
from agentgraph.backends.base import Adapter, GenerationRequest, RequestMeta
from agentgraph.core.messages import ChatMessage
from agentgraph.core.sampling import Sampling
from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer
from examples.train_roles_arith import additions, make_team
from tests.servers import free_port, start_server, stop, wait_healthy

pytestmark = pytest.mark.vllm
RANK = 8


async def first_logprob(url: str, model: str) -> float:
    body = {"model": model, "prompt": "What is 12 + 30? The answer is", "max_tokens": 1, "temperature": 0.0}
    async with httpx.AsyncClient(timeout=120) as c:
        r = await c.post(f"{url}/completions", json=body | {"logprobs": 0})
        r.raise_for_status()
        return float(r.json()["choices"][0]["logprobs"]["token_logprobs"][0])


async def test_every_server_serves_the_new_adapter_and_a_late_one_waits(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"vllm-{p}.log" for p in ports]
    procs = [
        start_server(p, log, max_model_len=1024, lora_rank=RANK) for p, log in zip(ports, logs, strict=True)
    ]
    roots = [f"http://127.0.0.1:{p}" for p in ports]
    a, b = (f"{r}/v1" for r in roots)
    try:
        deadline = time.monotonic() + 420
        for root, proc, log in zip(roots, procs, logs, strict=True):
            wait_healthy(root, proc, log, deadline)
        stop(procs[1])  # B is down while the step's adapters are published
        config = RoleGRPOConfig(
            train_roles=("adder",), group_size=4, problems_per_step=3, steps=1, lora_r=RANK,
            learning_rate=2e-2, max_completion_length=12, format_reward=1.0, eval_every=0, kl_every=0,
        )  # fmt: skip
        async with OpenAI([a, b], lora_rank=RANK, eject_s=1.0, health_interval_s=3600) as backend:
            trainer = RoleGRPOTrainer(make_team(), additions(12, 0), backend, config, out=tmp_path / "run")
            await trainer.train()
            assert trainer.log[-1].groups_kept > 0  # a real update happened
            new = trainer.served["adder"]
            assert new.name == "adder@1"
            assert backend.holders(new) == [a]  # B missed it

            procs[1] = start_server(ports[1], logs[1], max_model_len=1024, lora_rank=RANK)
            wait_healthy(roots[1], procs[1], logs[1], time.monotonic() + 300)
            await backend.check_health()
            assert b in backend.healthy()  # up again, but without the adapter
            before = dict(backend.answered)
            msg = (ChatMessage(role="user", content="What is 2 + 3?"),)
            for i in range(6):  # sessions whose affinity is B as well as A
                meta = RequestMeta(session=f"s{i}")
                await backend.generate(
                    GenerationRequest(messages=msg, sampling=Sampling(max_tokens=2), adapter=new, meta=meta)
                )
            assert backend.answered[b] == before[b] and backend.answered[a] == before[a] + 6

            assert await backend.sync_adapters() == {}  # B loads every current version
            assert backend.holders(new) == [a, b]
            for url in (a, b):  # each server now serves the trained weights
                base, tuned = await first_logprob(url, "smollm2"), await first_logprob(url, new.name)
                assert abs(base - tuned) > 1e-4, url
            assert backend.holders(Adapter(name="adder@0", path="")) == [a, b]  # kept: keep_versions = 2
    finally:
        for p in procs:
            stop(p)
