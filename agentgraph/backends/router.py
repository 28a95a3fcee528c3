"""Teams of different models: one :class:`Backend` that sends each request to the backend of its model.

``Router({"r1": VLLM("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"), "math": OpenAI(urls)})`` is a
backend like the others, so the scheduler, shapes, ``serve``, evaluation and the trainers need no
special case: a request's ``model`` (the agent's, see :meth:`agentgraph.Team.model_of`) picks the
member, ``None`` goes to the default member (the first one unless ``default`` names another).
``for_model`` hands out each member's :class:`~agentgraph.backends.base.Served`, so every model keeps
its own chat template, think markers, context length and tokenizer, and the scheduler checks each
agent's model before the first request (a model no member serves is a
:class:`~agentgraph.core.errors.ConfigError` naming the agent).

Members may be any backends: several in-process engines on one machine (each ``VLLM`` takes its own
``gpu_memory_utilization`` share: the CLI splits 0.85 evenly between them and says so), endpoints of a
``vllm serve`` fleet per model, or a mix. They start in order and stop in reverse order; one that
fails to start stops the ones already started.

Examples
--------
>>> import asyncio
>>> from agentgraph.backends import Scripted
>>> big = Scripted(default=lambda call: "\\\\boxed{4}", model="big")
>>> small = Scripted(default=lambda call: "\\\\boxed{5}", model="small")
>>> router = Router({"big": big, "small": small})
>>> router.for_model(None) is big, router.for_model("small") is small, router.for_model("huge")
(True, True, None)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from types import TracebackType

from agentgraph.backends.base import Backend, Completion, GenerationRequest, Served
from agentgraph.core.errors import ConfigError, RequestRejected


class Router:
    """Each request to the member serving its ``model`` (see the module docstring)."""

    name = "router"

    def __init__(self, backends: Mapping[str, Backend], *, default: str | None = None) -> None:
        if not backends:
            raise ConfigError("backends", "a router needs a backend", "map model names to backends")
        self.backends = dict(backends)
        self.default = default if default is not None else next(iter(self.backends))
        if self.default not in self.backends:
            raise ConfigError(
                "default", f"{self.default!r} is not one of {', '.join(self.backends)}", "name a member"
            )
        self._stack: contextlib.AsyncExitStack | None = None
        self.requests: dict[str, int] = dict.fromkeys(self.backends, 0)  # requests each member was sent

    def __repr__(self) -> str:
        return f"Router({', '.join(f'{k}={type(b).__name__}' for k, b in self.backends.items())})"

    def member(self, model: str | None) -> str | None:
        """The name of the member serving ``model`` (``None``: the default), or ``None``."""
        if model is None:
            return self.default
        if model in self.backends:
            return model
        # a member may know its model by another name too (an engine by its resolved path)
        return next((k for k, b in self.backends.items() if b.for_model(model) is not None), None)

    def member_for(self, model: str | None) -> Backend | None:
        """The member backend serving ``model`` (``None``: the default), or ``None``."""
        key = self.member(model)
        return None if key is None else self.backends[key]

    def for_model(self, model: str | None) -> Served | None:
        key = self.member(model)
        return None if key is None else self.backends[key].for_model(None)

    @property
    def in_flight(self) -> int | None:
        """Requests the members hold now, or ``None`` when a member cannot tell."""
        counts = [getattr(b, "in_flight", None) for b in self.backends.values()]
        ints = [c for c in counts if isinstance(c, int)]
        return sum(ints) if len(ints) == len(counts) else None

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.backends)

    @property
    def eager(self) -> bool:
        """Whether its requests finish without waiting (:mod:`agentgraph.engine.eager`): when every
        member's do."""
        return all(getattr(b, "eager", False) is True for b in self.backends.values())

    async def generate(self, request: GenerationRequest) -> Completion:
        key = self.member(request.model)
        if key is None:
            raise RequestRejected(
                "model",
                f"no backend serves {request.model!r} (served: {', '.join(self.backends)})",
                "add a backend for it to the router",
            )
        self.requests[key] += 1
        # the member serves one model under its own name: the request goes to its default
        return await self.backends[key].generate(dataclasses.replace(request, model=None))

    async def __aenter__(self) -> Router:
        stack = contextlib.AsyncExitStack()
        try:
            for b in self.backends.values():
                await stack.enter_async_context(b)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
