"""A backend of plain Python callables: deterministic, instant, for tests and simulations.

An agent is a function ``(ScriptedCall) -> str``, or a coroutine function (``async def``) when it
should take time without blocking the event loop (agents with different latencies).
``ScriptedCall`` exposes the request, its metadata (session, agent, role, round), the prompt
text, and an ``rng`` seeded from (seed, session, agent, round, kind) — so results do not
depend on scheduling order::

    def truthful(call):  return "\\\\boxed{42}" if call.rng.random() < 0.8 else "\\\\boxed{7}"
    backend = Scripted({"a0": truthful}, default=lambda call: "\\\\boxed{1}", seed=0)

Token ids come from a stable word tokenizer (words and punctuation hashed with CRC32), so token
accounting is exact and repeatable. Given a model's tokenizer (``Scripted(tokenizer=...)``) the ids
are that model's instead (chat template for prompts), so a trainer can score scripted turns.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from agentgraph.backends.base import Completion, GenerationRequest, chat_prompt_ids, check_model
from agentgraph.core.errors import BackendError, RequestRejected
from agentgraph.core.messages import ChatMessage
from agentgraph.core.thinking import ThinkFormat

_WORD = re.compile(r"\w+|[^\w\s]")


def _line_ids(line: str) -> tuple[int, ...]:
    return tuple(zlib.crc32(w.encode()) % 50_000 for w in _WORD.findall(line))


class _Lines:
    """The ids of lines a backend has tokenized, at most ``size`` of them (then it starts over):
    instructions, problems and peers' messages recur, line for line, across a run's prompts. Kept
    per backend, not per process, so a run is not served by an earlier run's prompts."""

    __slots__ = ("ids", "size")

    def __init__(self, size: int = 65536) -> None:
        self.ids: dict[str, tuple[int, ...]] = {}
        self.size = size

    def encode(self, text: str) -> list[int]:
        # a loop extending one list: twice as fast as chaining the lines' tuples (bench/scheduler.py)
        cache = self.ids
        out: list[int] = []
        for line in text.split("\n"):
            if (ids := cache.get(line)) is None:
                if len(cache) >= self.size:
                    cache.clear()
                ids = cache[line] = _line_ids(line)
            out += ids
        return out

    def messages(self, messages: Sequence[ChatMessage]) -> list[int]:
        out: list[int] = []
        for m in messages:
            out += self.encode(m.content)
        return out


class ScriptedCall:
    """What a scripted agent is asked: the request, and a generator seeded for it."""

    # slots and a lazily made generator: one is built per scripted request, most never draw
    __slots__ = ("_rng", "request", "seed")

    def __init__(self, request: GenerationRequest, seed: int = 0) -> None:
        self.request = request
        self.seed = seed
        self._rng: random.Random | None = None

    def __repr__(self) -> str:
        return f"ScriptedCall(request={self.request!r}, seed={self.seed!r})"

    @property
    def rng(self) -> random.Random:
        """Seeded from (seed, session, agent, round, kind) — or, when the request carries its own
        sampling seed, from (that seed, round, kind) alone, so the same seed repeats a session as it
        does on an engine; made on first use (seeding costs more than the rest of a scripted turn,
        and most agents never draw)."""
        if self._rng is None:
            m = self.request.meta
            if (own := self.request.sampling.seed) is not None:
                self._rng = random.Random(f"request|{own}|{m.round}|{m.kind}")
            else:
                self._rng = random.Random(f"{self.seed}|{m.session}|{m.agent}|{m.round}|{m.kind}")
        return self._rng

    @property
    def agent(self) -> str:
        return self.request.meta.agent

    @property
    def role(self) -> str:
        return self.request.meta.role

    @property
    def round(self) -> int:
        return self.request.meta.round

    @property
    def problem(self) -> str:
        return self.request.meta.problem

    @property
    def prompt(self) -> str:
        return "\n".join(m.content for m in self.request.messages)

    @property
    def prefix(self) -> str:
        """What this turn already wrote (a continued thinking turn): the agent returns what follows.
        An agent that returns its whole turn again is fine too: the prefix is cut off."""
        return self.request.assistant_prefix


ScriptedAgent = Callable[[ScriptedCall], str | Awaitable[str]]


def _is_async(agent: ScriptedAgent) -> bool:
    # a coroutine function, or an object whose __call__ is one; a plain function that returns an
    # awaitable is taken for plain: write such an agent as ``async def``
    return inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__)


def echo(call: ScriptedCall) -> str:
    """Repeats the last line of the prompt: handy for checking what an agent was shown."""
    return call.prompt.splitlines()[-1] if call.prompt else ""


class Scripted:
    """Agents as Python callables, looked up by agent name, then role, then ``default``.

    ``model`` names the model this backend stands for, so a mixed team can be simulated with a
    :class:`~agentgraph.backends.router.Router` of scripted backends; a request for another model is
    refused."""

    name = "scripted"

    def __init__(
        self,
        agents: Mapping[str, ScriptedAgent] | None = None,
        *,
        default: ScriptedAgent = echo,
        seed: int = 0,
        latency_s: float = 0.0,
        max_context: int | None = None,
        tokenizer: Any = None,
        think_format: ThinkFormat | None = None,
        model: str | None = None,
    ) -> None:
        self.agents = dict(agents or {})
        self.model = model  # the name agents may ask for (None: no name, the default only)
        self.think_format = think_format
        self.tokenizer = tokenizer
        self.default = default
        self.seed = seed
        self.latency_s = latency_s
        self.max_context = max_context
        self.calls = 0
        self.in_flight = 0  # requests being answered now (an async agent still running)
        self.model_path: str | None = None  # scripted agents have no weights
        self.lora_rank: int | None = None
        self._lines = _Lines()

    @property
    def eager(self) -> bool:
        """Whether its requests finish without waiting, so the scheduler starts them eagerly
        (:mod:`agentgraph.engine.eager`): with no latency and every agent a plain function (an
        ``async`` agent may wait, holding what is bound to its task, such as an httpx client's
        cancel scope). A subclass whose ``generate`` waits says ``False``."""
        return not self.latency_s and not any(map(_is_async, [*self.agents.values(), self.default]))

    def for_model(self, model: str | None) -> Scripted | None:
        return self if model is None or model == self.model else None

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        if request.prompt_token_ids is not None:
            return len(request.prompt_token_ids)
        if self.tokenizer is not None:
            return len(chat_prompt_ids(self.tokenizer, request.messages))
        return len(self._lines.messages(request.messages))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        if self.tokenizer is not None:
            return chat_prompt_ids(self.tokenizer, request.messages)
        return self._lines.messages(request.messages)

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is not None:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return self._lines.encode(text)

    async def generate(self, request: GenerationRequest) -> Completion:
        start = time.perf_counter()
        meta = request.meta
        check_model(self, request, (self.model,))
        prompt_ids = self.prompt_ids(request)
        # as an engine does: the prompt it would serve, over the context, is refused
        if self.max_context is not None and len(prompt_ids) + 1 > self.max_context:
            raise RequestRejected(
                "prompt",
                f"{len(prompt_ids)} tokens do not fit the context of {self.max_context}",
                "shorten it",
            )
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self.calls += 1
        self.in_flight += 1
        try:
            agents = self.agents  # by agent name, then role, then the default
            agent = self.default
            if agents:
                agent = agents.get(meta.agent) or agents.get(meta.role) or agent
            out = agent(ScriptedCall(request, self.seed))
            text = out if isinstance(out, str) else await out
        except BackendError:
            raise
        except Exception as e:  # a scripted agent's bug is reported like an engine error, not hidden
            raise BackendError(f"scripted agent {meta.agent!r} raised {type(e).__name__}: {e}") from e
        finally:
            self.in_flight -= 1
        prefix = request.assistant_prefix
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :]
        s = request.sampling
        limit = s.max_tokens
        finish = "stop"
        if len(text) > limit and len(words := list(_WORD.finditer(text))) > limit:
            # like an engine: the text stops where the token budget ends (a token is ≥ 1 character,
            # so text no longer than the budget never needs the word scan)
            text, finish = text[: words[limit - 1].end()], "length"
        hits = [(i, stop) for stop in s.stop if (i := text.find(stop)) >= 0] if s.stop else None
        if hits:  # like an engine's stop strings: the earliest one ends the text
            i, stop = min(hits)
            text, finish = text[: i + len(stop) if s.include_stop else i], "stop"
        logprobs: list[float] | None
        if self.tokenizer is not None:  # the policy model's ids, so a trainer can score these turns
            ids = self.encode(text)
            if finish == "stop" and not hits and self.tokenizer.eos_token_id is not None:
                ids.append(int(self.tokenizer.eos_token_id))
            logprobs = None  # no model here: a trainer scores these turns itself (on-policy)
        else:
            ids = self._lines.encode(text)
            logprobs = [-1.0] * len(ids) if s.logprobs else None
        return Completion(
            text=text,
            prompt_token_ids=prompt_ids,
            token_ids=ids,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(ids),
            finish_reason=finish,
            logprobs=logprobs,
            latency_s=time.perf_counter() - start,
        )

    async def __aenter__(self) -> Scripted:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
