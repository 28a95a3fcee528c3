"""OpenAI-compatible HTTP endpoints: a ``vllm serve`` fleet or any compatible server.

- Session affinity: all requests of one session go to the same endpoint (chosen by a stable hash
  of the session id), so that server's prefix cache sees the shared prompt prefix.
- Fleet failover: an endpoint that refuses connections, drops one mid-answer or answers 502/503 is
  ejected for ``eject_s`` seconds and the request goes to the next healthy endpoint (affinity
  order); a background probe of ``/health`` every ``health_interval_s`` re-admits it early. Ejected
  endpoints remain a last resort, so a fleet never refuses work while any member might answer.
- In-flight requests are bounded by a semaphore (``max_in_flight``) and, when ``rate_limit`` is set,
  by ``asyncio-throttle`` (at most N requests per ``period_s``).
- Against vLLM servers the request asks for ``return_token_ids`` (a vLLM extension), so transcripts
  hold the engine's token ids; any server reports ``usage``, which is what token counts come from.
- Adapters (``lora_rank`` set): vLLM servers load LoRA adapters at run time
  (``/v1/load_lora_adapter``; the servers need ``--enable-lora`` and
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, and must read the adapter's path). :meth:`load_adapter`
  loads one onto every server; a request for an adapter goes only to servers known to hold it. A
  server that missed a load (down, restarted, answered 404 for the name) is skipped for that adapter
  until the health loop (or :meth:`sync_adapters`) has loaded it there, so no request ever runs on a
  base model or a stale version silently. An adapter never loaded (``--adapters``) is loaded on its
  first request.
- Prompts as token ids (fleet parity with the in-process engine): with the served model's tokenizer
  (``tokenizer=``, or the model directory the servers name in ``/v1/models`` — vLLM reports it as
  ``root``) the backend renders every chat request with the model's chat template (or
  ``chat_template``) and sends the ids to ``/v1/completions``. So prompts are measured before they
  are sent (context fitting, ``truncate-peers``), think markers are detected from the template,
  thinking budgets are forced exactly as on ``VLLM()``, and every server runs the same ids. Rendering
  here rather than asking the servers' ``/tokenize``: fitting a later-round prompt measures it once
  per peer dropped, and a local render costs no round trip. Without a tokenizer (a server that is not
  vLLM, a model not on this machine) requests stay chat requests and a team that needs the tokenizer
  (a thinking budget) is refused before its first request.
- At start every endpoint's ``/v1/models`` is read: one not serving the named model is a
  :class:`ConfigError` naming both; their ``max_model_len`` gives the context.
- The API key is read from the environment variable named by ``api_key_env`` (default
  ``OPENAI_API_KEY``), never stored, and redacted (``***``) from every error message, so it cannot
  reach a transcript, a log or a report.

We talk HTTP with ``httpx`` directly rather than the ``openai`` client because the vLLM extension
fields (token ids) and per-endpoint routing are first-class here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from asyncio_throttle.throttler import Throttler

from agentgraph.backends.adapter_hosting import AdapterHosting
from agentgraph.backends.base import Adapter, Completion, GenerationRequest, chat_prompt_ids, check_model
from agentgraph.backends.priority import Priorities
from agentgraph.backends.wire import parse_completion
from agentgraph.core.errors import BackendError, ConfigError
from agentgraph.core.models import resolve
from agentgraph.core.thinking import ThinkFormat, detect

log = logging.getLogger(__name__)


class OpenAI(AdapterHosting):
    name = "openai"

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_in_flight: int = 256,
        rate_limit: int | None = None,
        period_s: float = 1.0,
        timeout_s: float = 300.0,
        vllm_extensions: bool = True,
        max_context: int | None = None,
        eject_s: float = 15.0,
        health_interval_s: float = 5.0,
        think_format: ThinkFormat | None = None,
        lora_rank: int | None = None,
        tokenizer: str | None = None,
        chat_template: str | None = None,
        scheduling: str = "fcfs",
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not eps:
            raise ConfigError("endpoints", "no endpoint given", "pass --endpoint http://host:port/v1")
        for e in eps:
            if not e.startswith(("http://", "https://")):
                raise ConfigError(
                    "endpoints", f"{e!r} is not an http(s) URL", "e.g. http://127.0.0.1:8000/v1"
                )
        if max_in_flight < 1:
            raise ConfigError("max_in_flight", f"{max_in_flight} < 1", "allow at least one request in flight")
        if rate_limit is not None and rate_limit < 1:
            raise ConfigError("rate_limit", f"{rate_limit} < 1", "omit it or allow at least one request")
        self.endpoints = [e.rstrip("/") for e in eps]
        self.model = model
        self._api_key = os.environ.get(api_key_env, "")
        self._sem = asyncio.Semaphore(max_in_flight)
        self.in_flight = 0  # requests sent and not yet answered (or waiting for a slot)
        # each request's priority; the servers must run `vllm serve --scheduling-policy priority`
        self.priorities = Priorities(scheduling)
        self._throttle = Throttler(rate_limit=rate_limit, period=period_s) if rate_limit else None
        self.timeout_s = timeout_s
        self.vllm_extensions = vllm_extensions
        self.max_context = max_context
        # the servers' chat templates are not visible from here: thinking is off unless named
        self.think_format = think_format
        self._think_named = think_format is not None
        self.tokenizer_name = tokenizer
        self.chat_template = chat_template
        self._tokenizer: Any = None
        self.model_path: str | None = None  # the servers hold the weights; set when the tokenizer is local
        self.lora_rank = lora_rank  # what the servers' --max-lora-rank allows (their word, not ours)
        self._client: httpx.AsyncClient | None = None
        self.eject_s = eject_s
        self.health_interval_s = health_interval_s
        self._down_until: dict[str, float] = {}
        self.ejections: dict[str, int] = {}
        self._health_task: asyncio.Task[None] | None = None
        self._adapters: dict[str, Adapter] = {}  # name → adapter every server must hold
        self._loaded: dict[str, set[str]] = {e: set() for e in self.endpoints}
        self._load_lock = asyncio.Lock()
        self.answered: dict[str, int] = dict.fromkeys(self.endpoints, 0)  # requests each endpoint answered

    def __repr__(self) -> str:  # never show the key
        return f"OpenAI(endpoints={self.endpoints!r}, model={self.model!r})"

    async def __aenter__(self) -> OpenAI:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits)
        try:
            await self._check_models()
        except BaseException:
            await self.client.aclose()
            self._client = None
            raise
        if len(self.endpoints) > 1:
            self._health_task = asyncio.create_task(self._health_loop())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("use `async with OpenAI(...) as backend`")
        return self._client

    async def _models_of(self, ep: str) -> list[dict[str, Any]] | None:
        try:
            r = await self.client.get(f"{ep}/models")
            r.raise_for_status()
            data = r.json()["data"]
            return [d for d in data if isinstance(d, dict) and "id" in d]
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return None

    async def _check_models(self) -> None:
        """Every endpoint that answers serves the named model (or, unnamed, the first one's); the
        tokenizer, think markers and context follow from it."""
        listed = await asyncio.gather(*(self._models_of(ep) for ep in self.endpoints))
        answering = [(ep, ms) for ep, ms in zip(self.endpoints, listed, strict=True) if ms]
        if not answering:
            if self.model is None:
                raise ConfigError(
                    "endpoints", "no endpoint answered /models", "start the server or fix --endpoint"
                )
            # a named model on servers that list none (or are not up yet): nothing to check against
            log.warning("no endpoint answered /models: serving %s unchecked", self.model)
            if self.tokenizer_name is not None:
                self._load_tokenizer(self.tokenizer_name)
            return
        if self.model is None:
            self.model = str(answering[0][1][0]["id"])
        entry: dict[str, Any] | None = None
        for ep, ms in answering:
            ids = [str(m["id"]) for m in ms]
            if self.model not in ids:
                raise ConfigError(
                    "endpoints",
                    f"{ep} serves {', '.join(ids)}, not {self.model}",
                    "point --endpoint at servers of that model, or name the model they serve",
                )
            entry = entry or next(m for m in ms if str(m["id"]) == self.model)
        assert entry is not None
        if self.max_context is None and isinstance(entry.get("max_model_len"), int):
            self.max_context = int(entry["max_model_len"])
        self._load_tokenizer(str(entry.get("root") or self.model))

    def _load_tokenizer(self, served: str) -> None:
        """The named tokenizer (an error if it cannot load), else the served model's if it is on
        this machine (a directory, or a Hugging Face id in the local cache); else none."""
        from transformers import AutoTokenizer

        named = self.tokenizer_name
        source = resolve(named) if named is not None else served
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError) as e:
            if named is not None:
                raise ConfigError(
                    "tokenizer", f"cannot load {named!r} ({type(e).__name__})", "give the model's directory"
                ) from None
            log.info("no local tokenizer for %s: chat requests, no thinking budgets", source)
            return
        if Path(source).is_dir():
            self.model_path = source
        if not self._think_named:
            self.think_format = detect(self._tokenizer, self.chat_template)

    def for_model(self, model: str | None) -> OpenAI | None:
        return self if model is None or model == self.model else None

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        if self._tokenizer is None:
            return None
        return chat_prompt_ids(self._tokenizer, request.messages, self.chat_template)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        ids = self.prompt_ids(request)
        return None if ids is None else len(ids)

    def encode(self, text: str) -> list[int]:
        if self._tokenizer is None:
            raise ConfigError(
                "tokenizer",
                f"the openai backend has no tokenizer for {self.model}",
                "pass --tokenizer (the model's directory or id), or drop the thinking budget",
            )
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def _order(self, session: str) -> list[str]:
        start = zlib.crc32(session.encode()) % len(self.endpoints)
        return self.endpoints[start:] + self.endpoints[:start]

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        s = request.sampling
        if request.prompt_token_ids is None and self._tokenizer is not None and self.vllm_extensions:
            ids = self.prompt_ids(request)
            assert ids is not None
            request = dataclasses.replace(request, prompt_token_ids=tuple(ids))
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            body["stop"] = list(s.stop)
        if s.seed is not None:
            body["seed"] = s.seed
        if self.priorities.policy != "fcfs":
            body["priority"] = self.priorities.of(request.meta.session, request.meta.round)
        if request.adapter is not None:
            body["model"] = request.adapter.name  # vLLM serves LoRA adapters under their own names
        if self.vllm_extensions:
            body["return_token_ids"] = True
            if s.include_stop:
                body["include_stop_str_in_output"] = True
            if s.top_k is not None:
                body["top_k"] = s.top_k
        if request.prompt_token_ids is not None:
            body["prompt"] = list(request.prompt_token_ids)
            if self.max_context is not None:  # as the in-process engine: the turn ends at the context
                body["max_tokens"] = max(1, min(s.max_tokens, self.max_context - len(body["prompt"])))
            if s.logprobs:
                body["logprobs"] = 0
            return "/completions", body
        body["messages"] = [m.model_dump() for m in request.messages]
        if s.logprobs:
            body["logprobs"] = True
        return "/chat/completions", body

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def healthy(self) -> list[str]:
        now = time.monotonic()
        return [ep for ep in self.endpoints if self._down_until.get(ep, 0.0) <= now]

    def _eject(self, ep: str) -> None:
        self._down_until[ep] = time.monotonic() + self.eject_s
        self.ejections[ep] = self.ejections.get(ep, 0) + 1

    async def check_health(self) -> list[str]:
        """Probe ``/health`` of every ejected endpoint; re-admit those that answer."""
        for ep in [e for e in self.endpoints if e not in self.healthy()]:
            root = ep[: -len("/v1")] if ep.endswith("/v1") else ep
            try:
                r = await self.client.get(f"{root}/health", timeout=5.0)
                if r.status_code == 200:
                    self._down_until.pop(ep, None)
            except httpx.HTTPError:
                pass
        return self.healthy()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await self.check_health()
            if self._adapters:
                await self.sync_adapters()

    async def generate(self, request: GenerationRequest) -> Completion:
        check_model(self, request, (self.model,))
        self.in_flight += 1  # waiting for a slot counts: the request is held here
        try:
            return await self._send(request, *self._body(request))
        finally:
            self.in_flight -= 1

    async def _send(self, request: GenerationRequest, path: str, body: dict[str, Any]) -> Completion:
        adapter, last_error = request.adapter, ""
        if adapter is not None and adapter.name not in self._adapters:
            async with self._load_lock:  # first request of an adapter never loaded here (--adapters)
                if adapter.name not in self._adapters:
                    await self.load_adapter(adapter)
        async with self._sem:
            healthy = set(self.healthy())
            order = self._order(request.meta.session)
            if adapter is not None:  # never a server without this exact adapter version
                order = [e for e in order if adapter.name in self._loaded[e]]
                if not order:
                    raise BackendError(f"no server holds adapter {adapter.name} now", transient=True)
            # affinity first, among healthy servers; ejected ones stay as a last resort
            for ep in [e for e in order if e in healthy] + [e for e in order if e not in healthy]:
                if self._throttle is not None:
                    async with self._throttle:
                        pass
                start = time.perf_counter()
                try:
                    r = await self.client.post(f"{ep}{path}", json=body)
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as e:
                    # the server is gone or died mid-answer: eject it, send the request elsewhere
                    self._eject(ep)
                    last_error = self._redact(f"{ep}: {type(e).__name__}: {e}")
                    continue
                except httpx.HTTPError as e:
                    raise BackendError(self._redact(f"{ep}: {type(e).__name__}: {e}"), transient=True) from e
                latency = time.perf_counter() - start
                if r.status_code == 404 and adapter is not None:
                    # the server lost the adapter (restarted): skip it until it is loaded again
                    self._loaded[ep].discard(adapter.name)
                    last_error = self._redact(f"{ep}: HTTP 404 for adapter {adapter.name}")
                    continue
                if r.status_code in (502, 503):
                    self._eject(ep)
                    last_error = self._redact(f"{ep}: HTTP {r.status_code}")
                    continue
                if r.status_code >= 400:
                    transient = r.status_code in (408, 429) or r.status_code >= 500
                    raise BackendError(
                        self._redact(f"{ep}: HTTP {r.status_code}: {r.text[:300]}"), transient=transient
                    )
                self.answered[ep] += 1
                c = parse_completion(r.json(), path, latency)
                self.priorities.served(request.meta.session, c.completion_tokens)
                if not c.prompt_token_ids and "prompt" in body:  # the ids we sent are the ids it ran
                    c.prompt_token_ids = list(body["prompt"])
                return c
        raise BackendError(f"no endpoint reachable ({last_error})", transient=True)
