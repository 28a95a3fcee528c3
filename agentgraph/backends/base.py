"""The one async protocol every backend speaks, and what a backend knows of each model it serves.

Two protocols, so that nothing vLLM-only is asked of every backend:

- :class:`Backend` — the core: ``generate``, ``for_model`` and the async context manager. Every
  request goes through it; a :class:`~agentgraph.backends.router.Router` sends each to the member
  that serves the request's ``model``.
- :class:`Served` — one model as its backend serves it: context length, think markers, prompt
  rendering and measuring, encoding, local weights and LoRA rank. ``backend.for_model(m)`` gives it
  (``None``: the backend serves no model ``m``), and the scheduler asks it before the first request,
  so a capability a team needs and a model lacks (a thinking budget without a tokenizer) is refused
  at start, not mid-run. Backends of one model are their own :class:`Served`.

A :class:`GenerationRequest` carries chat messages (or prompt token ids), sampling parameters, an
optional LoRA adapter, the model it is for (``None``: the backend's default) and routing metadata
(session, agent, round — used for session affinity and by scripted agents).

A :class:`Completion` carries what the engine reported: text, token ids, counts,
log-probs when asked, finish reason and timing. Backends never swallow errors: they raise
:class:`~agentgraph.core.errors.BackendError` and the scheduler records it on the turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from agentgraph.core.errors import ConfigError, RequestRejected
from agentgraph.core.messages import ChatMessage
from agentgraph.core.sampling import Sampling
from agentgraph.core.thinking import ThinkFormat


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served per request. ``name`` identifies a version: a new name means new weights."""

    name: str
    path: str


# RequestMeta and GenerationRequest are built for every turn: plain slotted dataclasses build in a
# third of a frozen one's time (0.8 µs against 2.4 µs for eight fields: a frozen __init__ goes through
# object.__setattr__ per field). Nothing changes one after it is built; derive with
# dataclasses.replace.
@dataclass(slots=True)
class RequestMeta:
    session: str = ""
    agent: str = ""
    role: str = ""
    round: int = 0
    kind: str = "agent"
    problem: str = ""


@dataclass(slots=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...] = ()
    prompt_token_ids: tuple[int, ...] | None = None
    sampling: Sampling = field(default_factory=Sampling)
    adapter: Adapter | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)
    request_id: str = ""
    model: str | None = None  # the model the agent runs on, as the backend names it; None: its default
    assistant_prefix: str = ""  # text the assistant already wrote (a continued turn); ids are in the prompt


@dataclass(slots=True)
class Completion:
    """What a backend answered. Its lists are handed over: the turn that records them keeps them
    as they are (not copied), so a backend builds fresh ones for every completion."""

    text: str
    prompt_token_ids: list[int]
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    logprobs: list[float] | None = None
    latency_s: float = 0.0


def chat_prompt_ids(
    tokenizer: Any, messages: Sequence[ChatMessage], chat_template: str | None = None
) -> list[int]:
    """``messages`` rendered with the model's own chat template (or ``chat_template``), as the
    engine will see them."""
    enc = tokenizer.apply_chat_template(
        [m.model_dump() for m in messages],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        chat_template=chat_template,
    )
    return list(enc["input_ids"])


@runtime_checkable
class Served(Protocol):
    """One model as a backend serves it: what the scheduler asks before and between requests."""

    name: str
    max_context: int | None

    @property
    def model_path(self) -> str | None:
        """Local path of the model served, once known (trainers load the same weights); else ``None``."""
        ...

    @property
    def lora_rank(self) -> int | None:
        """Largest LoRA rank served per request (our adapters), or ``None`` when it serves none."""
        ...

    @property
    def think_format(self) -> ThinkFormat | None:
        """The think markers of the model served (from its chat template), or ``None``."""
        ...

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length in tokens if the backend can tell without a request, else ``None``."""
        ...

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        """The prompt token ids the engine will run, or ``None`` when the backend cannot tell."""
        ...

    def encode(self, text: str) -> list[int]:
        """``text`` as the model's token ids, no special tokens added (a forced conclusion)."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Turns requests into completions. Async context manager: ``async with backend: ...``."""

    name: str

    async def generate(self, request: GenerationRequest) -> Completion: ...

    def for_model(self, model: str | None) -> Served | None:
        """The model ``model`` as this backend serves it (``None``: its default model), or ``None``
        when it serves no such model. Known once the backend started (a fleet names its model)."""
        ...

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def served(backend: Backend, model: str | None = None) -> Served:
    """``backend.for_model(model)``, or a :class:`ConfigError` naming the model."""
    s = backend.for_model(model)
    if s is None:
        raise ConfigError(
            "model", f"the {backend.name} backend serves no model {model!r}", "serve it, or drop the model"
        )
    return s


def check_model(backend: Served, request: GenerationRequest, names: Sequence[str | None]) -> None:
    """Refuse a request for a model a one-model backend does not serve (never run it on another)."""
    if request.model is not None and request.model not in names:
        raise RequestRejected(
            "model",
            f"the {backend.name} backend serves {names[-1]!r}, not {request.model!r}",
            "route it with a Router, or drop the agent's model",
        )


@runtime_checkable
class AdapterHost(Protocol):
    """A backend whose servers load adapters at run time (a ``vllm serve`` fleet): a trainer loads each
    new version onto every server before any rollout asks for it, and unloads old versions."""

    async def load_adapter(self, adapter: Adapter) -> None: ...

    async def unload_adapter(self, adapter: Adapter) -> None: ...
