"""The backend of a process that does not generate: under ``accelerate launch`` only the main process
rolls out (see :mod:`agentgraph.train.roles`); the others hold this, which names the model and refuses
to generate, so a rollout on the wrong process is an error rather than a second engine."""

from __future__ import annotations

from types import TracebackType

from agentgraph.backends.base import Completion, GenerationRequest
from agentgraph.core.thinking import ThinkFormat


class Elsewhere:
    name = "elsewhere"
    max_context: int | None = None

    def __init__(self, model_path: str | None, lora_rank: int | None = None) -> None:
        self._model_path = model_path
        self._lora_rank = lora_rank

    @property
    def model_path(self) -> str | None:
        return self._model_path

    @property
    def lora_rank(self) -> int | None:
        return self._lora_rank

    @property
    def think_format(self) -> ThinkFormat | None:
        return None

    def for_model(self, model: str | None) -> Elsewhere:
        # it serves nothing; it names each model the main process serves (a trainer loads its weights)
        if model is None:
            return self
        from agentgraph.core.models import resolve

        return Elsewhere(resolve(model), self._lora_rank)

    async def generate(self, request: GenerationRequest) -> Completion:
        raise RuntimeError("this process does not generate: rollouts run in the main process")

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return None

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        return None

    def encode(self, text: str) -> list[int]:
        raise RuntimeError("this process does not generate: rollouts run in the main process")

    async def __aenter__(self) -> Elsewhere:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
