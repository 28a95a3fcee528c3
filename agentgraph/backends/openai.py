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
- The API key is read from the environment variable named by ``api_key_env`` (default
  ``OPENAI_API_KEY``), never stored, and redacted (``***``) from every error message, so it cannot
  reach a transcript, a log or a report.

We talk HTTP with ``httpx`` directly rather than the ``openai`` client because the vLLM extension
fields (token ids) and per-endpoint routing are first-class here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import zlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx
from asyncio_throttle.throttler import Throttler

from agentgraph.backends.base import Adapter, Completion, GenerationRequest
from agentgraph.core.errors import BackendError, ConfigError
from agentgraph.core.thinking import ThinkFormat

log = logging.getLogger(__name__)


class OpenAI:
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
        self._throttle = Throttler(rate_limit=rate_limit, period=period_s) if rate_limit else None
        self.timeout_s = timeout_s
        self.vllm_extensions = vllm_extensions
        self.max_context = max_context
        # the servers' chat templates are not visible from here: thinking is off unless named
        self.think_format = think_format
        self.model_path: str | None = None  # the servers hold the weights
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
        if self.model is None:
            self.model = await self._discover_model()
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

    async def _discover_model(self) -> str:
        last: Exception | None = None
        for ep in self.endpoints:
            try:
                r = await self.client.get(f"{ep}/models")
                r.raise_for_status()
                return str(r.json()["data"][0]["id"])
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                last = e
        raise ConfigError(
            "endpoints", f"no endpoint answered /models ({last})", "start the server or fix --endpoint"
        )

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return len(request.prompt_token_ids) if request.prompt_token_ids is not None else None

    def prompt_ids(self, request: GenerationRequest) -> list[int] | None:
        return list(request.prompt_token_ids) if request.prompt_token_ids is not None else None

    def encode(self, text: str) -> list[int]:
        raise ConfigError(
            "thinking_budget",
            "the openai backend holds no tokenizer to write a forced conclusion with",
            "use --backend vllm for thinking budgets, or drop the budget",
        )

    def _order(self, session: str) -> list[str]:
        start = zlib.crc32(session.encode()) % len(self.endpoints)
        return self.endpoints[start:] + self.endpoints[:start]

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            body["stop"] = list(s.stop)
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

    # -- adapters ------------------------------------------------------------------------------------
    def holders(self, adapter: Adapter) -> list[str]:
        """The endpoints known to hold ``adapter`` now."""
        return [e for e in self.endpoints if adapter.name in self._loaded[e]]

    async def _load_on(self, ep: str, a: Adapter) -> str | None:
        """Load ``a`` onto ``ep``; the reason it failed, or ``None``."""
        body = {"lora_name": a.name, "lora_path": a.path}
        try:
            r = await self.client.post(f"{ep}/load_lora_adapter", json=body)
        except httpx.HTTPError as e:
            return self._redact(f"{ep}: {type(e).__name__}: {e}")
        if r.status_code == 200 or (r.status_code == 400 and "already" in r.text):
            self._loaded[ep].add(a.name)
            return None
        return self._redact(f"{ep}: HTTP {r.status_code}: {r.text[:200]}")

    async def load_adapter(self, adapter: Adapter) -> None:
        """Load ``adapter`` onto every server. Servers that fail are not sent its requests until a
        later :meth:`sync_adapters` loads it there; :class:`BackendError` when no server took it."""
        self._adapters[adapter.name] = adapter
        errors = await asyncio.gather(*(self._load_on(ep, adapter) for ep in self.endpoints))
        for err in errors:
            if err is not None:
                log.warning("adapter %s not loaded (%s); that server waits for it", adapter.name, err)
        if not self.holders(adapter):
            raise BackendError(
                f"no server loaded adapter {adapter.name} ({errors[0]}); start them with --enable-lora "
                "and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, and put the adapter where they can read it"
            )

    async def unload_adapter(self, adapter: Adapter) -> None:
        """Unload ``adapter`` from the servers that hold it (an old version nobody asks for)."""
        self._adapters.pop(adapter.name, None)
        for ep in self.holders(adapter):
            self._loaded[ep].discard(adapter.name)
            try:
                r = await self.client.post(f"{ep}/unload_lora_adapter", json={"lora_name": adapter.name})
                if r.status_code != 200:
                    log.warning("unloading %s from %s: HTTP %s", adapter.name, ep, r.status_code)
            except httpx.HTTPError as e:  # a server that is gone holds nothing we will ask for
                log.warning("unloading %s from %s: %s", adapter.name, ep, type(e).__name__)

    async def sync_adapters(self) -> dict[str, list[str]]:
        """Load every current adapter onto each healthy server that lacks it; endpoint → missing names."""
        missing: dict[str, list[str]] = {}
        for ep in self.healthy():
            for a in list(self._adapters.values()):
                if a.name not in self._loaded[ep] and await self._load_on(ep, a) is not None:
                    missing.setdefault(ep, []).append(a.name)
        return missing

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
        path, body = self._body(request)
        last_error: str = ""
        adapter = request.adapter
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
                return self._parse(r.json(), path, latency)
        raise BackendError(f"no endpoint reachable ({last_error})", transient=True)

    @staticmethod
    def _parse(data: dict[str, Any], path: str, latency: float) -> Completion:
        try:
            choice = data["choices"][0]
            usage = data["usage"]
            text = choice["message"]["content"] if path == "/chat/completions" else choice["text"]
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"malformed response: missing {e}") from e
        token_ids = list(choice.get("token_ids") or [])
        prompt_ids = list(data.get("prompt_token_ids") or choice.get("prompt_token_ids") or [])
        logprobs = None
        lp = choice.get("logprobs")
        if lp:
            if path == "/chat/completions":
                logprobs = [float(t["logprob"]) for t in (lp.get("content") or [])]
            else:
                logprobs = [float(x) for x in (lp.get("token_logprobs") or [])]
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
