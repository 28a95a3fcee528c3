"""Retries and timeouts for requests, with ``tenacity``.

Transient failures — a :class:`BackendError` marked ``transient`` (HTTP 5xx/429, lost connections,
injected faults) and timeouts — are retried with exponential backoff and jitter; permanent ones
are not. Every failed attempt is kept (the turn records it), so no fault is silently absorbed.
A per-request timeout cancels the request, and cancelling a vLLM request aborts it in the engine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agentgraph.core.errors import BackendError

T = TypeVar("T")


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(3, ge=1, le=100, description="tries per request, the first included")
    initial_s: float = Field(0.5, ge=0, description="first backoff")
    max_s: float = Field(8.0, ge=0, description="longest backoff")
    jitter_s: float = Field(0.5, ge=0)
    timeout_s: float | None = Field(None, gt=0, description="per-attempt time limit")


def is_transient(e: BaseException) -> bool:
    return isinstance(e, TimeoutError) or (isinstance(e, BackendError) and e.transient)


async def call_with_retries(policy: RetryPolicy, fn: Callable[[], Awaitable[T]], failures: list[str]) -> T:
    """Await ``fn()`` under ``policy``; append a line per failed attempt to ``failures``.
    Raises the last error when every attempt failed or the error is permanent."""

    async def once() -> T:
        if policy.timeout_s is None:
            return await fn()
        return await asyncio.wait_for(fn(), policy.timeout_s)

    # the first attempt runs outside tenacity: most requests succeed, and tenacity's per-call set-up
    # costs more than the scheduler's whole turn on a fast backend (bench/scheduler.py)
    try:
        return await once()
    except (BackendError, TimeoutError) as e:
        if not first_failed(policy, e, failures):
            raise
    return await retry_after_first(policy, once, failures)


def _line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def first_failed(policy: RetryPolicy, e: BaseException, failures: list[str]) -> bool:
    """Record a first attempt's failure ``e``; whether the policy retries it."""
    failures.append(_line(e))
    return policy.attempts > 1 and is_transient(e)


async def retry_after_first(policy: RetryPolicy, fn: Callable[[], Awaitable[T]], failures: list[str]) -> T:
    """The attempts after a first one that failed transiently (see :func:`first_failed`): backoff,
    then up to ``policy.attempts − 1`` more calls of ``fn``, each failure appended to ``failures``."""

    async def attempt() -> T:
        try:
            return await fn()
        except (BackendError, TimeoutError) as e:
            failures.append(_line(e))
            raise

    await asyncio.sleep(policy.initial_s + random.uniform(0, policy.jitter_s))
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts - 1),
        wait=wait_exponential_jitter(initial=2 * policy.initial_s, max=policy.max_s, jitter=policy.jitter_s),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    return await retrying(attempt)
