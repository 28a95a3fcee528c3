"""The OpenAI wire format as the fleet backend reads it: a completion response as a :class:`Completion`
(vLLM's extension fields — token ids — when the server sends them)."""

from __future__ import annotations

from typing import Any

from agentgraph.backends.base import Completion
from agentgraph.core.errors import BackendError


def parse_completion(data: dict[str, Any], path: str, latency: float) -> Completion:
    try:
        choice = data["choices"][0]
        usage = data["usage"]
        text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
    except (KeyError, IndexError, TypeError) as e:
        raise BackendError(f"malformed response: missing {e}") from e
    token_ids = list(choice.get("token_ids") or [])
    prompt_ids = list(data.get("prompt_token_ids") or choice.get("prompt_token_ids") or [])
    lp = choice.get("logprobs") or {}
    chat = path == "/chat/completions"
    raw = [t["logprob"] for t in lp.get("content") or []] if chat else lp.get("token_logprobs") or []
    logprobs = [float(x) for x in raw] if lp else None
    return Completion(
        text=text or "",
        prompt_token_ids=prompt_ids,
        token_ids=token_ids,
        prompt_tokens=int(usage["prompt_tokens"]),
        completion_tokens=int(usage["completion_tokens"]),
        finish_reason=choice.get("finish_reason"),
        logprobs=logprobs,
        latency_s=latency,
    )


__all__ = ["parse_completion"]
