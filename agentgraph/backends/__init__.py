"""Backends: what turns requests into completions.

- :class:`VLLM` — in-process ``AsyncLLM`` (imported lazily: vLLM is an optional extra);
- :class:`OpenAI` — one or more OpenAI-compatible endpoints;
- :class:`Scripted` — plain Python callables, deterministic;
- :class:`Router` — several of these, one per model: a team of different models.

``create(name, ...)`` builds one by name: the one factory the CLI and configs use.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agentgraph.backends import engine_args as vllm_args
from agentgraph.backends.base import Adapter, Backend, Completion, GenerationRequest, RequestMeta, Served
from agentgraph.backends.openai import OpenAI
from agentgraph.backends.priority import check_scheduling
from agentgraph.backends.router import Router
from agentgraph.backends.scripted import Scripted, ScriptedAgent, ScriptedCall, echo
from agentgraph.backends.vllm import VLLM
from agentgraph.core.errors import ConfigError
from agentgraph.core.models import check, resolve

BACKENDS = ("vllm", "openai", "scripted")
log = logging.getLogger(__name__)


def load_agent(spec: str) -> ScriptedAgent:
    """The scripted agent ``module:function``."""
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise ConfigError(
            "scripted", f"{spec!r} is not module:function", "e.g. --scripted mypkg.agents:noisy"
        )
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError("scripted", f"cannot load {spec!r} ({e})", "check the module path") from None
    if not callable(obj):
        raise ConfigError("scripted", f"{spec!r} is not callable", "point at a function")
    agent: ScriptedAgent = obj
    return agent


def create(
    name: str,
    *,
    model: str | None = None,
    seed: int = 0,
    max_model_len: int = 2048,
    endpoints: Sequence[str] = (),
    scripted: str | None = None,
    lora_rank: int | None = None,
    policy_tokens: bool = False,
    engine: Mapping[str, Any] | None = None,
    engine_args: Sequence[str] = (),
    models: Sequence[str] = (),
    tokenizer: str | None = None,
    scheduling: str = "fcfs",
) -> Backend:
    """A backend by name, checked before anything starts.

    Parameters
    ----------
    name : {"vllm", "openai", "scripted"}
    model : str, optional
        HF id or local path (default: the embedded model); for ``openai``, the served model's name.
    seed, max_model_len
        Engine seed and context length (``scripted``: the context it enforces).
    endpoints : sequence of str
        ``openai``: the base URLs.
    scripted : str
        ``scripted``: the agent, ``module:function``.
    lora_rank : int, optional
        ``vllm``: serve LoRA adapters up to this rank per request; ``openai``: the servers were
        started with ``--enable-lora --max-lora-rank`` at least this, and adapters are loaded onto them
        at run time. The scripted backend serves none (a role trainer then trains against the base
        model's turns).
    policy_tokens : bool
        A trainer will score the turns: ``scripted`` tokenizes with ``model``'s tokenizer; ``vllm``
        reports log-probs of the processed sampling distribution (``logprobs_mode``).
    engine : mapping, optional
        ``vllm``: settings of :class:`VLLM` (``gpu_memory_utilization``, ``tensor_parallel_size``,
        ``kv_cache_dtype``, ``chat_template``, ...); ``None`` values mean "the default".
    engine_args : sequence of str
        ``vllm``: ``KEY=VALUE`` engine arguments, checked against vLLM's own argument parser.
    models : sequence of str
        Further models some agents run on (a mixed team): the result is a :class:`Router` with one
        member per model — ``model`` (the default) first. ``vllm``: one engine each, every engine
        given ``gpu_memory_utilization`` / N of the GPU (0.85 / N unless set: the value is then each
        engine's share); ``openai``: ``endpoints`` written ``MODEL=URL`` serve ``MODEL``, plain URLs
        the default model; ``scripted``: the same agent function stands for every model.
    scheduling : {"fcfs", "session-age", "session-progress", "least-served"}
        ``vllm``/``openai``: how the engine orders requests (:mod:`agentgraph.backends.priority`);
        a fleet's servers must run ``--scheduling-policy priority`` for any but ``fcfs``.
    tokenizer : str, optional
        ``openai``: the default model's tokenizer (directory or HF id), when the servers' model
        directory is not on this machine.

    The model is checked first (a directory without weights, an unknown Hugging Face id: one
    :class:`~agentgraph.core.errors.ConfigError`), so nothing starts for a model that cannot load.

    Examples
    --------
    >>> create("scripted", scripted="agentgraph.backends:echo").name
    'scripted'
    >>> create("tgi")
    Traceback (most recent call last):
    ...
    agentgraph.core.errors.ConfigError: backend: unknown backend 'tgi' (use one of vllm, openai, scripted)
    """
    extra = [m for m in dict.fromkeys(models) if m != model]
    if extra:
        return _router(
            name,
            [model, *extra],
            seed=seed,
            max_model_len=max_model_len,
            endpoints=endpoints,
            scripted=scripted,
            lora_rank=lora_rank,
            policy_tokens=policy_tokens,
            engine=engine,
            engine_args=engine_args,
            tokenizer=tokenizer,
            scheduling=scheduling,
        )
    check_scheduling(scheduling)
    settings = {k: v for k, v in (engine or {}).items() if v is not None}
    if name != "vllm" and (settings or engine_args):
        field = next(iter(settings), "engine_arg")
        raise ConfigError(
            field,
            f"is a setting of the in-process vLLM engine; the {name} backend starts none",
            "use --backend vllm, or give it to `vllm serve`",
        )
    if tokenizer is not None and name != "openai":
        raise ConfigError(
            "tokenizer",
            f"names the tokenizer of a vllm serve fleet; the {name} backend loads the model's own",
            "drop --tokenizer, or use --backend openai",
        )
    if name == "vllm":
        check(model)
        vllm_args.check(settings)
        kwargs = vllm_args.parse(engine_args)
        if lora_rank is not None:
            settings |= {"enable_lora": True, "max_lora_rank": lora_rank}
        if policy_tokens:  # trainers score under the sampling distribution: the engine reports it
            kwargs.setdefault("logprobs_mode", "processed_logprobs")
        return VLLM(
            model,
            seed=seed,
            max_model_len=max_model_len,
            engine_kwargs=kwargs,
            scheduling=scheduling,
            **settings,
        )
    if name == "openai":
        if not endpoints:
            raise ConfigError(
                "endpoint",
                "the openai backend needs at least one --endpoint",
                "e.g. --endpoint http://127.0.0.1:8000/v1",
            )
        urls = []
        for e in endpoints:
            named, url = _split_endpoint(e)
            if named not in (None, model):
                raise ConfigError("endpoint", f"{e!r} names {named!r}, which no agent runs on", "drop it")
            urls.append(url)
        return OpenAI(urls, model=model, lora_rank=lora_rank, tokenizer=tokenizer, scheduling=scheduling)
    if name == "scripted":
        if scheduling != "fcfs":
            raise ConfigError(
                "scheduling",
                "scripted agents answer at once: there is no queue to order",
                "use a vLLM backend",
            )
        if not scripted:
            raise ConfigError(
                "scripted", "the scripted backend needs --scripted module:function", "name an agent function"
            )
        tok = None
        if policy_tokens:
            from transformers import AutoTokenizer

            check(model)
            tok = AutoTokenizer.from_pretrained(resolve(model))
        return Scripted(
            default=load_agent(scripted), seed=seed, max_context=max_model_len, tokenizer=tok, model=model
        )
    raise ConfigError("backend", f"unknown backend {name!r}", f"use one of {', '.join(BACKENDS)}")


def _split_endpoint(spec: str) -> tuple[str | None, str]:
    """``MODEL=URL`` → ``(MODEL, URL)``; a plain URL → ``(None, URL)``."""
    if spec.startswith(("http://", "https://")) or "=" not in spec:
        return None, spec
    model, _, url = spec.partition("=")
    return model, url


def _router(name: str, models: Sequence[str | None], **kw: Any) -> Router:
    """One member per model (see :func:`create`); members keyed by model name."""
    engine = dict(kw.pop("engine") or {})
    endpoints: Sequence[str] = kw.pop("endpoints")
    tokenizer = kw.pop("tokenizer")
    if name == "vllm":
        share = engine.get("gpu_memory_utilization") or round(0.85 / len(models), 3)
        engine["gpu_memory_utilization"] = share
        log.warning("%d engines in this process: gpu_memory_utilization %s each", len(models), share)
    by_model: dict[str | None, list[str]] = {}
    for e in endpoints:
        m, url = _split_endpoint(e)
        if m is not None and m not in models:
            raise ConfigError(
                "endpoint",
                f"{e!r} names {m!r}, which no agent runs on",
                f"use one of {', '.join(map(str, models))}",
            )
        by_model.setdefault(m if m != models[0] else None, []).append(url)
    members: dict[str, Backend] = {}
    for i, m in enumerate(models):
        eps = by_model.get(None if i == 0 else m, [])
        if name == "openai" and not eps:
            raise ConfigError(
                "endpoint", f"no endpoint serves {m or 'the default model'}", f"add --endpoint {m}=URL"
            )
        members[m or "default"] = create(
            name,
            model=m,
            endpoints=eps,
            engine=engine,
            tokenizer=tokenizer if i == 0 else None,
            **kw,
        )
    return Router(members, default=models[0] or "default")


__all__ = [
    "BACKENDS",
    "VLLM",
    "Adapter",
    "Backend",
    "Completion",
    "GenerationRequest",
    "OpenAI",
    "RequestMeta",
    "Router",
    "Scripted",
    "ScriptedCall",
    "Served",
    "create",
    "echo",
    "load_agent",
]
