"""The scheduler's eager gather (agentgraph.engine.eager): started at once, same results and errors
as asyncio.gather, and never used where a backend's requests are bound to their task."""

from __future__ import annotations

import asyncio

import pytest

import agentgraph as ag
from agentgraph.backends import Router, Scripted, ScriptedCall
from agentgraph.backends.base import Completion, GenerationRequest
from agentgraph.engine import eager
from agentgraph.graph.generators import full
from agentgraph.testing.faulty import Faulty


async def test_coroutines_run_before_the_loop_turns_and_keep_their_order() -> None:
    loop_turned = asyncio.Event()
    saw: list[tuple[str, bool]] = []

    async def at_once(x: str) -> str:
        saw.append((x, loop_turned.is_set()))
        return x

    async def waits(x: str) -> str:
        saw.append((x, loop_turned.is_set()))
        await asyncio.sleep(0)
        return x * 2

    asyncio.get_running_loop().call_soon(loop_turned.set)
    assert await eager.gather(at_once("a"), waits("b"), at_once("c")) == ["a", "bb", "c"]
    assert saw == [("a", False), ("b", False), ("c", False)]  # all started before the loop turned

    saw.clear()
    loop_turned.clear()
    asyncio.get_running_loop().call_soon(loop_turned.set)
    assert await eager.gather(at_once("a"), at_once("c"), eager=False) == ["a", "c"]
    assert saw == [("a", True), ("c", True)]  # asyncio.gather: as tasks, on a later loop turn


async def test_the_first_error_propagates_after_every_coroutine_started() -> None:
    started: list[str] = []
    finished = asyncio.Event()

    async def fails(x: str) -> str:
        started.append(x)
        raise ValueError(x)

    async def slow() -> str:
        started.append("slow")
        await asyncio.sleep(0.01)
        finished.set()
        return "slow"

    with pytest.raises(ValueError, match=r"^first$"):
        await eager.gather(fails("first"), slow(), fails("second"))
    assert started == ["first", "slow", "second"]
    await asyncio.wait_for(finished.wait(), 1)  # the others run on, as under asyncio.gather


async def test_cancelling_the_caller_reaches_a_coroutine_that_waits() -> None:
    cleaned = asyncio.Event()
    entered = asyncio.Event()

    async def waits() -> str:
        try:
            entered.set()
            await asyncio.sleep(10)
            return "never"
        except asyncio.CancelledError:
            cleaned.set()
            raise

    async def at_once() -> str:
        return "x"

    caller = asyncio.ensure_future(eager.gather(at_once(), waits()))
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert cleaned.is_set()  # the cancellation was thrown into the coroutine, not just dropped


def test_backends_say_whether_their_requests_finish_at_once() -> None:
    async def slow(call: ScriptedCall) -> str:
        await asyncio.sleep(0)
        return "\\boxed{1}"

    class CallsAsync:
        async def __call__(self, call: ScriptedCall) -> str:
            return "\\boxed{1}"

    plain = Scripted(default=lambda call: "\\boxed{1}")
    assert plain.eager and Faulty(plain).eager
    assert not Scripted(default=lambda call: "x", latency_s=0.01).eager  # its requests wait
    assert not Faulty(plain, latency_s=0.01).eager
    assert not Scripted({"a0": slow}, default=lambda call: "x").eager
    assert not Scripted(default=CallsAsync()).eager
    assert Router({"m": plain, "n": Scripted(model="n")}).eager
    assert not Router({"m": plain, "n": Scripted(default=slow, model="n")}).eager


class TaskBound:
    """A backend whose requests must end in the task they began in (as an httpx/anyio cancel scope
    requires): it declares nothing, so the scheduler must not start them eagerly on Python 3.11."""

    name = "task-bound"
    max_context = None
    think_format = None
    model_path = None
    lora_rank = None

    def __init__(self) -> None:
        self.inner = Scripted(default=lambda call: "\\boxed{1}")
        self.moved = 0

    def for_model(self, model: str | None) -> TaskBound | None:
        return self if model is None else None

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return None

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        return None

    def encode(self, text: str) -> list[int]:
        return []

    async def generate(self, request: GenerationRequest) -> Completion:
        began = asyncio.current_task()
        await asyncio.sleep(0)
        if asyncio.current_task() is not began:
            self.moved += 1
        return await self.inner.generate(request)

    async def __aenter__(self) -> TaskBound:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_requests_bound_to_their_task_end_in_the_task_they_began_in() -> None:
    backend = TaskBound()
    results = await ag.solve_many(ag.Team(full(3), rounds=2), ["1 + 0?", "0 + 1?"], backend)  # type: ignore[arg-type]
    assert all(r.answer == "1" for r in results)
    assert backend.moved == 0
