"""In-process vLLM (``AsyncLLM``): one engine shared by every session of a process.

- Prompts are rendered with the model's own chat template (transformers tokenizer) into token ids
  and sent as ``TokensPrompt``, so the prompt token ids and counts in a transcript are exactly the
  ones the engine ran.
- Prefix caching is on: agents that share a role and a problem share a prompt prefix. On CPU the KV
  block size is 32 tokens unless ``block_size`` says otherwise (vLLM's CPU default of 128 never
  shares a prefix as short as a team prompt's; see docs/benchmarks.md).
- Per-request LoRA: a request's :class:`~agentgraph.backends.base.Adapter` becomes a
  ``LoRARequest``; a new adapter name (a new version of a role) gets a new integer id, so updated
  weights are hot-loaded without restarting the engine.
- On this CPU build: ``enforce_eager`` (starts in ~30 s instead of ~2 min), an explicit KV-cache size
  (``VLLM_CPU_KVCACHE_SPACE``, GiB), and no per-request seeds (they kill the CPU worker): the engine
  is seeded once with ``seed``.
- Cancelling a request (timeout, Ctrl-C) aborts it inside the engine; leaving the ``async with``
  block shuts the engine and its worker processes down.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from types import TracebackType
from typing import Any

from agentgraph.backends.base import Adapter, Completion, GenerationRequest, chat_prompt_ids
from agentgraph.errors import BackendError, ConfigError
from agentgraph.models import resolve


class VLLM:
    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        max_model_len: int = 2048,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = True,
        enable_prefix_caching: bool = True,
        enable_lora: bool = False,
        max_lora_rank: int = 16,
        max_loras: int = 4,
        kv_cache_gib: int = 2,
        gpu_memory_utilization: float = 0.85,
        max_num_seqs: int = 256,
        max_in_flight: int = 1024,
        block_size: int | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_model_len < 16:
            raise ConfigError("max_model_len", f"{max_model_len} is too small", "use at least 16 tokens")
        if max_in_flight < 1:
            raise ConfigError("max_in_flight", f"{max_in_flight} < 1", "allow at least one request in flight")
        self.model_name = model
        self.max_model_len = max_model_len
        self.max_context: int | None = max_model_len
        self.dtype = dtype
        self.seed = seed
        self.enforce_eager = enforce_eager
        self.enable_prefix_caching = enable_prefix_caching
        self.enable_lora = enable_lora
        self.max_lora_rank = max_lora_rank
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_num_seqs = max_num_seqs
        if block_size is not None and (block_size < 1 or block_size % 16):
            raise ConfigError("block_size", f"{block_size} is not a multiple of 16", "use 16, 32, 64 or 128")
        self.block_size = block_size
        self.engine_kwargs = dict(engine_kwargs or {})
        self._sem = asyncio.Semaphore(max_in_flight)
        self._engine: Any = None
        self._tokenizer: Any = None
        self._lora_ids: dict[str, int] = {}
        self._ids = itertools.count()
        self.model_path: str | None = None  # resolved (and provisioned) when the engine starts

    @property
    def lora_rank(self) -> int | None:
        return self.max_lora_rank if self.enable_lora else None

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> VLLM:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def start(self) -> None:
        if self._engine is not None:
            return
        self.model_path = resolve(self.model_name)
        # vLLM logs every engine detail at INFO; keep the terminal for our progress unless asked
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from transformers import AutoTokenizer
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.platforms import current_platform
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise ConfigError(
                "backend", f"vLLM is not importable ({e})", "install agentgraph[cpu] or agentgraph[gpu]"
            ) from None
        dtype = self.dtype
        if current_platform.is_cpu():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(self.kv_cache_gib)))
            if (os.cpu_count() or 1) <= 4:
                # vLLM keeps one core for the front end by default; on a 2-core machine that halves
                # the engine: measured 37.5 → 64.7 tokens/s at batch 32 (docs/benchmarks.md)
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            # measured here: fp32 generates ~2x faster than vLLM's default bf16 downcast on CPUs
            # without AVX512-BF16 (docs/benchmarks.md)
            dtype = "float32" if dtype == "auto" else dtype
        block_size = self.block_size
        if block_size is None and current_platform.is_cpu():
            # vLLM's CPU default is 128-token KV blocks and only whole blocks are shared, so team
            # prompts (shared system prompt + problem, ~60-120 tokens) never hit the prefix cache.
            # Measured here: a debate ran 22% faster at 32 (33% of prompt tokens from cache), while
            # pure decode was ~8% slower (docs/benchmarks.md)
            block_size = 32
        # explicit engine_kwargs win over everything chosen here
        extra = ({"block_size": block_size} if block_size is not None else {}) | self.engine_kwargs
        args = AsyncEngineArgs(
            model=self.model_path,
            max_model_len=self.max_model_len,
            dtype=dtype,  # type: ignore[arg-type]
            seed=self.seed,
            enforce_eager=self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching,
            enable_lora=self.enable_lora,
            max_lora_rank=self.max_lora_rank,  # type: ignore[arg-type]
            max_loras=self.max_loras,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_num_seqs=self.max_num_seqs,
            disable_log_stats=False,
            **extra,
        )
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._engine = AsyncLLM.from_engine_args(args)

    def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            raise RuntimeError("the vLLM engine is not started: use `async with VLLM(...) as engine`")
        return self._engine

    # -- prompts -----------------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        if self._tokenizer is None:
            raise RuntimeError("the vLLM engine is not started")
        return chat_prompt_ids(self._tokenizer, request.messages)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return len(self.prompt_ids(request))

    def _lora(self, adapter: Adapter | None) -> Any:
        if adapter is None:
            return None
        if not self.enable_lora:
            raise ConfigError(
                "adapter", f"{adapter.name!r} requested but LoRA is off", "VLLM(enable_lora=True)"
            )
        from vllm.lora.request import LoRARequest

        if adapter.name not in self._lora_ids:
            self._lora_ids[adapter.name] = len(self._lora_ids) + 1
        return LoRARequest(adapter.name, self._lora_ids[adapter.name], adapter.path)

    # -- generation --------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        engine = self.engine
        ids = self.prompt_ids(request)
        s = request.sampling
        if len(ids) + 1 > self.max_model_len:
            raise ConfigError(
                "prompt",
                f"{len(ids)} tokens do not fit the context of {self.max_model_len}",
                "shorten the problem, use a summary policy or raise max_model_len",
            )
        params = SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=min(s.max_tokens, self.max_model_len - len(ids)),
            stop=list(s.stop) or None,
            logprobs=0 if s.logprobs else None,
        )
        rid = request.request_id or f"ag-{next(self._ids)}"
        lora = self._lora(request.adapter)
        async with self._sem:
            start = time.perf_counter()
            final = None
            try:
                async for out in engine.generate(
                    TokensPrompt(prompt_token_ids=ids), params, rid, lora_request=lora
                ):
                    final = out
            except asyncio.CancelledError:
                await engine.abort(rid)
                raise
            except Exception as e:
                raise BackendError(f"vLLM request {rid} failed: {type(e).__name__}: {e}") from e
            latency = time.perf_counter() - start
        if final is None or not final.outputs:
            raise BackendError(f"vLLM request {rid} returned no output")
        c = final.outputs[0]
        token_ids = list(c.token_ids)
        logprobs = None
        if s.logprobs and c.logprobs is not None:
            logprobs = [float(step[t].logprob) for step, t in zip(c.logprobs, token_ids, strict=True)]
        return Completion(
            text=c.text,
            prompt_token_ids=list(final.prompt_token_ids or ids),
            token_ids=token_ids,
            prompt_tokens=len(final.prompt_token_ids or ids),
            completion_tokens=len(token_ids),
            finish_reason=c.finish_reason,
            logprobs=logprobs,
            latency_s=latency,
        )

    # -- accounting ----------------------------------------------------------------------------------
    @staticmethod
    def engine_counters() -> dict[str, float]:
        """vLLM's own Prometheus counters (prompt/generation tokens, prefix-cache queries/hits)."""
        from vllm.v1.metrics.reader import Counter, get_metrics_snapshot

        totals: dict[str, float] = {}
        for m in get_metrics_snapshot():
            if isinstance(m, Counter) and m.name in {
                "vllm:prompt_tokens",
                "vllm:generation_tokens",
                "vllm:prefix_cache_queries",
                "vllm:prefix_cache_hits",
            }:
                totals[m.name] = totals.get(m.name, 0.0) + float(m.value)
        return totals
