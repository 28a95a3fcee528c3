"""Run-time LoRA adapters on a ``vllm serve`` fleet: the part of :class:`~agentgraph.backends.openai.OpenAI`
that loads each adapter version onto every server and tracks which server holds which.

vLLM servers load adapters at run time (``/v1/load_lora_adapter``; they need ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, and must read the adapter's path). A server that missed a
load (down, restarted, answered 404 for the name) is skipped for that adapter until
:meth:`AdapterHosting.sync_adapters` has loaded it there, so no request runs on a base model or a
stale version silently.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from agentgraph.backends.base import Adapter
from agentgraph.core.errors import BackendError

log = logging.getLogger(__name__)


class AdapterHosting:
    """Adapter bookkeeping over ``endpoints``; the host class gives the client and the health view."""

    endpoints: list[str]
    _adapters: dict[str, Adapter]
    _loaded: dict[str, set[str]]

    @property
    def client(self) -> httpx.AsyncClient:
        raise NotImplementedError

    def _redact(self, text: str) -> str:
        raise NotImplementedError

    def healthy(self) -> list[str]:
        raise NotImplementedError

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
