"""Fault injection: wrap any backend and make it fail the way real fleets do, reproducibly.

``Faulty(inner, error_rate=0.1, timeout_rate=0.05, garbage_rate=0.05, latency_s=0.2, fail_agents={"a2"})``

- ``error_rate`` — the request raises a transient :class:`BackendError` (retried by the scheduler);
- ``timeout_rate`` — the request raises :class:`TimeoutError` (as a per-request timeout would);
- ``garbage_rate`` — the request succeeds with unparseable bytes instead of the model's text;
- ``latency_s`` — added before every request;
- ``fail_agents`` — these agents always fail with a permanent error.

Each decision is drawn from a generator seeded by (seed, session, agent, round, kind, attempt), so a
run is the same whatever the scheduling order, and a retry of the same request can succeed.
``injected`` counts what was injected, for tests and reports.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

from agentgraph.backends.base import Backend, Completion, GenerationRequest, Served
from agentgraph.core.errors import BackendError, ConfigError

GARBAGE = "\x00\ufffd<<garbage>>\ufffd\x00"


class Faulty:
    name = "faulty"

    def __init__(
        self,
        inner: Backend,
        *,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        garbage_rate: float = 0.0,
        latency_s: float = 0.0,
        fail_agents: Iterable[str] = (),
        seed: int = 0,
    ) -> None:
        for field, rate in (
            ("error_rate", error_rate),
            ("timeout_rate", timeout_rate),
            ("garbage_rate", garbage_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(field, f"{rate} is outside [0, 1]", "use a probability")
        if error_rate + timeout_rate + garbage_rate > 1.0:
            raise ConfigError("error_rate", "the fault rates add up to more than 1", "lower them")
        if latency_s < 0:
            raise ConfigError("latency_s", f"{latency_s} is negative", "use a delay ≥ 0")
        self.inner = inner
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.garbage_rate = garbage_rate
        self.latency_s = latency_s
        self.fail_agents = set(fail_agents)
        self.seed = seed
        self.injected: Counter[str] = Counter()
        self._attempts: Counter[tuple[str, str, int, str]] = Counter()

    def for_model(self, model: str | None) -> Served | None:
        # what the models are is the inner backend's; only its requests are made to fail
        return self.inner.for_model(model)

    @property
    def eager(self) -> bool:
        """Whether its requests finish without waiting (:mod:`agentgraph.engine.eager`): with no
        latency of its own, when its inner backend's do."""
        return not self.latency_s and getattr(self.inner, "eager", False) is True

    async def generate(self, request: GenerationRequest) -> Completion:
        m = request.meta
        key = (m.session, m.agent, m.round, m.kind)
        self._attempts[key] += 1
        rng = random.Random(f"{self.seed}|{m.session}|{m.agent}|{m.round}|{m.kind}|{self._attempts[key]}")
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if m.agent in self.fail_agents:
            self.injected["agent_down"] += 1
            raise BackendError(f"injected: agent {m.agent} is down", transient=False)
        x = rng.random()
        if x < self.error_rate:
            self.injected["error"] += 1
            raise BackendError("injected: transient server error", transient=True)
        if x < self.error_rate + self.timeout_rate:
            self.injected["timeout"] += 1
            raise TimeoutError("injected: request timed out")
        c = await self.inner.generate(request)
        if x < self.error_rate + self.timeout_rate + self.garbage_rate:
            self.injected["garbage"] += 1
            c.text = GARBAGE
        return c

    async def __aenter__(self) -> Faulty:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)
