"""Backends: what turns requests into completions.

- :class:`VLLM` — in-process ``AsyncLLM`` (imported lazily: vLLM is an optional extra);
- :class:`OpenAI` — one or more OpenAI-compatible endpoints;
- :class:`Scripted` — plain Python callables, deterministic.

``create(name, **options)`` builds one by name for configs and the CLI.
"""

from __future__ import annotations

from typing import Any

from agentgraph.backends.base import Adapter, Backend, Completion, GenerationRequest, RequestMeta
from agentgraph.backends.faulty import Faulty
from agentgraph.backends.openai import OpenAI
from agentgraph.backends.scripted import Scripted, ScriptedCall, echo
from agentgraph.backends.vllm import VLLM
from agentgraph.errors import ConfigError

BACKENDS = ("vllm", "openai", "scripted")


def create(name: str, **options: Any) -> Backend:
    """A backend by name: ``vllm`` (model=…), ``openai`` (endpoints=…) or ``scripted`` (agents=…)."""
    if name == "vllm":
        return VLLM(**options)
    if name == "openai":
        if "endpoints" not in options:
            raise ConfigError("endpoints", "the openai backend needs endpoints", "pass --endpoint URL")
        return OpenAI(**options)
    if name == "scripted":
        return Scripted(**options)
    raise ConfigError("backend", f"unknown backend {name!r}", f"use one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "VLLM",
    "Adapter",
    "Backend",
    "Completion",
    "Faulty",
    "GenerationRequest",
    "OpenAI",
    "RequestMeta",
    "Scripted",
    "ScriptedCall",
    "create",
    "echo",
]
