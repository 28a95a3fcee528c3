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
  is seeded once with ``seed``. On a GPU none of that applies: CUDA graphs stay on (``enforce_eager``
  defaults to ``None`` = eager only on CPU) and vLLM's own dtype and block size are kept.
- Environment variables the engine needs are set only while it starts (its processes inherit
  them) and restored afterwards, so one engine's settings never leak into the next.
- Every engine setting a GPU user needs is a parameter (``tensor_parallel_size``,
  ``data_parallel_size``, ``kv_cache_dtype``, ``max_num_seqs``, ...); anything else goes through
  ``engine_kwargs`` (the CLI's ``--engine-arg KEY=VALUE``, checked with vLLM's own argument
  parser: :func:`agentgraph.engine_args.parse`). ``engine_args()`` shows what the engine will get.
- Requests are vLLM engine inputs (``tokens_input``): prompts are rendered here with the model's
  chat template (or ``chat_template``), and the think markers are detected from it.
- Cancelling a request (timeout, Ctrl-C) aborts it inside the engine; leaving the ``async with``
  block shuts the engine and its worker processes down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from agentgraph.backends.base import Adapter, Completion, GenerationRequest, chat_prompt_ids, check_model
from agentgraph.backends.priority import Priorities
from agentgraph.core.errors import BackendError, ConfigError, RequestRejected
from agentgraph.core.logs import engine_output_to
from agentgraph.core.models import resolve
from agentgraph.core.thinking import ThinkFormat, detect


@contextlib.contextmanager
def scoped_env(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` set in ``os.environ`` for the block, the previous values restored after it."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read_chat_template(spec: str | None) -> str | None:
    """A chat template given as a file path or as the template text itself."""
    if spec is None:
        return None
    p = Path(spec).expanduser()
    if "{" not in spec and not p.is_file():
        raise ConfigError("chat_template", f"{spec!r} is neither a file nor a template", "give a .jinja path")
    return p.read_text(encoding="utf-8") if "{" not in spec else spec


# the ranks vLLM's LoRAConfig accepts for max_lora_rank (vllm/config/lora.py)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class VLLM:
    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        max_model_len: int = 2048,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool | None = None,
        enable_prefix_caching: bool = True,
        enable_lora: bool = False,
        max_lora_rank: int = 16,
        max_loras: int = 4,
        kv_cache_gib: int = 2,
        gpu_memory_utilization: float = 0.85,
        max_num_seqs: int = 256,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        kv_cache_dtype: str = "auto",
        max_in_flight: int = 1024,
        block_size: int | None = None,
        chat_template: str | None = None,
        think: ThinkFormat | Literal["auto"] | None = "auto",
        scheduling: str = "fcfs",
        log_file: str | Path | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_model_len < 16:
            raise ConfigError("max_model_len", f"{max_model_len} is too small", "use at least 16 tokens")
        if max_in_flight < 1:
            raise ConfigError("max_in_flight", f"{max_in_flight} < 1", "allow at least one request in flight")
        if not 0.0 < gpu_memory_utilization <= 1.0:
            raise ConfigError(
                "gpu_memory_utilization", f"{gpu_memory_utilization} is outside (0, 1]", "e.g. 0.85"
            )
        for field, n in (
            ("tensor_parallel_size", tensor_parallel_size),
            ("data_parallel_size", data_parallel_size),
            ("max_num_seqs", max_num_seqs),
        ):
            if n < 1:
                raise ConfigError(field, f"{n} < 1", "use at least 1")
        self.model_name = model
        self.max_model_len = max_model_len
        self.max_context: int | None = max_model_len
        self.dtype = dtype
        self.seed = seed
        self.enforce_eager = enforce_eager
        self.enable_prefix_caching = enable_prefix_caching
        self.enable_lora = enable_lora
        # vLLM serves adapters up to a rank from a fixed list; an adapter of rank 4 runs on an engine
        # whose max rank is 8, so a trainer's rank is rounded up rather than refused at engine start
        fits = [r for r in LORA_RANKS if r >= max_lora_rank]
        if max_lora_rank < 1 or not fits:
            raise ConfigError(
                "max_lora_rank",
                f"{max_lora_rank} is outside 1..{LORA_RANKS[-1]}",
                "use a LoRA rank vLLM serves",
            )
        self.max_lora_rank = fits[0]
        self.max_loras = max_loras
        self.kv_cache_gib = kv_cache_gib
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_num_seqs = max_num_seqs
        self.tensor_parallel_size = tensor_parallel_size
        self.data_parallel_size = data_parallel_size
        self.kv_cache_dtype = kv_cache_dtype
        if block_size is not None and (block_size < 1 or block_size % 16):
            raise ConfigError("block_size", f"{block_size} is not a multiple of 16", "use 16, 32, 64 or 128")
        self.block_size = block_size
        self.chat_template = read_chat_template(chat_template)
        self._think = think
        self.log_file = Path(log_file) if log_file is not None else None
        self._logs = contextlib.ExitStack()
        self.engine_kwargs = dict(engine_kwargs or {})
        self._sem = asyncio.Semaphore(max_in_flight)
        self.priorities = Priorities(scheduling)  # each request's priority (backends/priority.py)
        self._engine: Any = None
        self._tokenizer: Any = None
        self._lora_ids: dict[str, int] = {}
        self._ids = itertools.count()
        self.model_path: str | None = None  # resolved (and provisioned) when the engine starts
        # what this engine ran, from its own outputs: vLLM's Prometheus counters are per process,
        # and a second engine in the process unregisters the first one's (seen with vLLM 0.32)
        self.counters: dict[str, int] = {"prompt_tokens": 0, "generation_tokens": 0, "requests": 0}
        self.think_format: ThinkFormat | None = think if isinstance(think, ThinkFormat) else None

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

    def engine_args(self) -> tuple[Any, dict[str, str]]:
        """vLLM's ``AsyncEngineArgs`` for this engine, and the environment it must start under
        (set for the start only: nothing leaks into the next engine of the process)."""
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.platforms import current_platform
        except ImportError as e:
            raise ConfigError(
                "backend", f"vLLM is not importable ({e})", "install agentgraph[cpu] or agentgraph[gpu]"
            ) from None
        if self.model_path is None:
            self.model_path = resolve(self.model_name)
        cpu = current_platform.is_cpu()
        env: dict[str, str] = {}
        dtype = self.dtype
        if cpu:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(int(self.kv_cache_gib))
            if (os.cpu_count() or 1) <= 4:
                # vLLM keeps one core for the front end by default; on a 2-core machine that halves
                # the engine: measured 37.5 → 64.7 tokens/s at batch 32 (docs/benchmarks.md)
                env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
            # measured here: fp32 generates ~2x faster than vLLM's default bf16 downcast on CPUs
            # without AVX512-BF16 (docs/benchmarks.md)
            dtype = "float32" if dtype == "auto" else dtype
        block_size = self.block_size
        if block_size is None and cpu:
            # vLLM's CPU default is 128-token KV blocks and only whole blocks are shared, so team
            # prompts (shared system prompt + problem, ~60-120 tokens) never hit the prefix cache.
            # Measured here: a debate ran 22% faster at 32 (33% of prompt tokens from cache), while
            # pure decode was ~8% slower (docs/benchmarks.md)
            block_size = 32
        # CUDA graphs on GPU; eager on this CPU build, where it starts in ~30 s instead of ~2 min
        eager = cpu if self.enforce_eager is None else self.enforce_eager
        # explicit engine_kwargs win over everything chosen here
        extra = ({"block_size": block_size} if block_size is not None else {}) | self.engine_kwargs
        args = AsyncEngineArgs(
            **{
                "model": self.model_path,
                "max_model_len": self.max_model_len,
                "dtype": dtype,
                "seed": self.seed,
                "enforce_eager": eager,
                "enable_prefix_caching": self.enable_prefix_caching,
                "enable_lora": self.enable_lora,
                "max_lora_rank": self.max_lora_rank,
                "max_loras": self.max_loras,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "max_num_seqs": self.max_num_seqs,
                "tensor_parallel_size": self.tensor_parallel_size,
                "data_parallel_size": self.data_parallel_size,
                "kv_cache_dtype": self.kv_cache_dtype,
                "disable_log_stats": False,
                "scheduling_policy": self.priorities.engine_policy,
                **extra,
            }
        )
        return args, env

    def start(self) -> None:
        if self._engine is not None:
            return
        args, env = self.engine_args()
        if self.log_file is not None:
            # vLLM configures its log handlers on import (and again while an engine starts): bind
            # them to the original streams, whose descriptors are about to point at the log file,
            # not to the terminal streams put in their place
            stream = os.environ.get("VLLM_LOGGING_STREAM", "ext://sys.__stdout__")
            self._logs.enter_context(scoped_env({"VLLM_LOGGING_STREAM": stream}))
            import vllm.logger  # noqa: F401

            self._logs.enter_context(engine_output_to(self.log_file))
        try:
            from transformers import AutoTokenizer
            from vllm.v1.engine.async_llm import AsyncLLM

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            if self._think == "auto":
                self.think_format = detect(self._tokenizer, self.chat_template)
            with scoped_env(env):  # the engine process is spawned here and inherits these
                self._engine = AsyncLLM.from_engine_args(args)
        except BaseException:
            self._logs.close()
            raise

    def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        try:
            if engine is not None:
                engine.shutdown()
        finally:
            self._logs.close()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            raise RuntimeError("the vLLM engine is not started: use `async with VLLM(...) as engine`")
        return self._engine

    def for_model(self, model: str | None) -> VLLM | None:
        """This engine, for its own model (by the name it was given or its resolved path)."""
        return self if model is None or model in (self.model_name, self.model_path) else None

    # -- prompts -----------------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return list(request.prompt_token_ids)
        if self._tokenizer is None:
            raise RuntimeError("the vLLM engine is not started")
        return chat_prompt_ids(self._tokenizer, request.messages, self.chat_template)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return len(self.prompt_ids(request))

    def encode(self, text: str) -> list[int]:
        if self._tokenizer is None:
            raise RuntimeError("the vLLM engine is not started")
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def _lora(self, adapter: Adapter | None) -> Any:
        if adapter is None:
            return None
        if not self.enable_lora:
            raise RequestRejected(
                "adapter", f"{adapter.name!r} requested but LoRA is off", "VLLM(enable_lora=True)"
            )
        from vllm.lora.request import LoRARequest

        if adapter.name not in self._lora_ids:
            self._lora_ids[adapter.name] = len(self._lora_ids) + 1
        return LoRARequest(adapter.name, self._lora_ids[adapter.name], adapter.path)

    @property
    def in_flight(self) -> int:
        """Requests the engine holds now (its own count: an aborted request has left it)."""
        return 0 if self._engine is None else int(self._engine.output_processor.get_num_unfinished_requests())

    # -- generation --------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Completion:
        from vllm import SamplingParams
        from vllm.inputs import tokens_input

        engine = self.engine
        check_model(self, request, (self.model_path, self.model_name))
        ids = self.prompt_ids(request)
        s = request.sampling
        if len(ids) + 1 > self.max_model_len:
            raise RequestRejected(
                "prompt",
                f"{len(ids)} tokens do not fit the context of {self.max_model_len}",
                "shorten the problem, use a summary policy or raise max_model_len",
            )
        params = SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=min(s.max_tokens, self.max_model_len - len(ids)),
            stop=list(s.stop) or None,
            include_stop_str_in_output=s.include_stop,
            logprobs=0 if s.logprobs else None,
            top_k=0 if s.top_k is None else s.top_k,  # vLLM's 0: every token
            seed=s.seed,
        )
        rid = request.request_id or f"ag-{next(self._ids)}"
        lora = self._lora(request.adapter)
        priority = self.priorities.of(request.meta.session, request.meta.round)
        async with self._sem:
            start = time.perf_counter()
            final = None
            try:
                # an engine input dict (vLLM's current input API: no raw-prompt processing)
                async for out in engine.generate(
                    tokens_input(ids), params, rid, lora_request=lora, priority=priority
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
        self.counters["prompt_tokens"] += len(final.prompt_token_ids or ids)
        self.counters["generation_tokens"] += len(token_ids)
        self.counters["requests"] += 1
        self.priorities.served(request.meta.session, len(token_ids))
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
    def engine_counters(model_name: str | None = None) -> dict[str, float]:
        """vLLM's own Prometheus counters (prompt/generation tokens, prefix-cache queries/hits), of
        every engine of the process or of the one serving ``model_name`` (its ``model_path``)."""
        from vllm.v1.metrics.reader import Counter, get_metrics_snapshot

        totals: dict[str, float] = {}
        for m in get_metrics_snapshot():
            if model_name is not None and m.labels.get("model_name") != model_name:
                continue
            if isinstance(m, Counter) and m.name in {
                "vllm:prompt_tokens",
                "vllm:generation_tokens",
                "vllm:prefix_cache_queries",
                "vllm:prefix_cache_hits",
            }:
                totals[m.name] = totals.get(m.name, 0.0) + float(m.value)
        return totals
