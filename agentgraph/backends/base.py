"""The one async protocol every backend speaks.

A :class:`GenerationRequest` carries chat messages (or prompt token ids), sampling parameters, an
optional LoRA adapter and routing metadata (session, agent, round — used for session affinity and by
scripted agents). A :class:`Completion` carries what the engine reported: text, token ids, counts,
log-probs when asked, finish reason and timing. Backends never swallow errors: they raise
:class:`~agentgraph.core.errors.BackendError` and the scheduler records it on the turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from agentgraph.core.messages import ChatMessage
from agentgraph.core.sampling import Sampling
from agentgraph.core.thinking import ThinkFormat


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served per request. ``name`` identifies a version: a new name means new weights."""

    name: str
    path: str


@dataclass(frozen=True)
class RequestMeta:
    session: str = ""
    agent: str = ""
    role: str = ""
    round: int = 0
    kind: str = "agent"
    problem: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...] = ()
    prompt_token_ids: tuple[int, ...] | None = None
    sampling: Sampling = field(default_factory=Sampling)
    adapter: Adapter | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)
    request_id: str = ""
    assistant_prefix: str = ""  # text the assistant already wrote (a continued turn); ids are in the prompt


@dataclass
class Completion:
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
class Backend(Protocol):
    """Turns requests into completions. Async context manager: ``async with backend: ...``."""

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

    async def generate(self, request: GenerationRequest) -> Completion: ...

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length in tokens if the backend can tell without a request, else ``None``."""
        ...

    @property
    def think_format(self) -> ThinkFormat | None:
        """The think markers of the model served (from its chat template), or ``None``."""
        ...

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        """The prompt token ids the engine will run, or ``None`` when the backend cannot tell."""
        ...

    def encode(self, text: str) -> list[int]:
        """``text`` as the model's token ids, no special tokens added (a forced conclusion)."""
        ...

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class AdapterHost(Protocol):
    """A backend whose servers load adapters at run time (a ``vllm serve`` fleet): a trainer loads each
    new version onto every server before any rollout asks for it, and unloads old versions."""

    async def load_adapter(self, adapter: Adapter) -> None: ...

    async def unload_adapter(self, adapter: Adapter) -> None: ...
