"""How much GPU memory the trainer needs, so a colocated engine can be given the rest.

On one GPU the vLLM engine and the trainer share the card. vLLM takes ``gpu_memory_utilization × total``
for weights and KV cache when it starts; the trainer needs the rest. :func:`trainer_bytes` estimates
the trainer's peak from the model's config and the trainer config:

``need = W + 16·A + S + L + C`` with

- ``W`` = base weights: parameters × 2 bytes (bf16 on CUDA; × 4 in float32);
- ``A`` = adapter parameters, each with a float32 weight, gradient and two AdamW moments (16 bytes);
- ``S`` = activations of one micro-batch of ``micro_batch`` sequences of ``seq_len`` tokens: with
  gradient checkpointing, each layer's input (``layers × hidden × 2`` bytes per token) plus one layer
  recomputed in the backward pass *and its gradients* (``2 × (12·hidden + 3·intermediate) × 2``
  bytes per token); without it, every layer's (``layers × (12·hidden + 3·intermediate) × 2``).
  Measured on an H200 (``bench/policy_step.py``, DeepSeek-R1-Distill-Qwen-1.5B's shape, bf16,
  checkpointing): 265 KB per token of the micro-batch at 12k–70k tokens, against 267 KB here — the
  recomputed layer's gradients were missing before (176 KB: the estimate fell 12% short at 16 × 4,352
  tokens, which would have sized a colocated engine into the trainer's memory);
- ``L`` = the head's chunk: ``logprob_chunk × vocab × 4`` bytes, three times (logits, masked copy,
  their gradient) — independent of the sequence length (:mod:`agentgraph.train.logprobs`);
- ``C`` = 1.5 GiB for the CUDA context, kernels and allocator slack.

:func:`colocated_utilization` is then ``min(0.9, 1 − need / total)`` (refused below 0.1: the trainer
would leave no room for a KV cache). ``--gpu-memory-utilization`` overrides it. It is an estimate of
the peak, not a measurement: ``bench/train_memory.py`` measures the log-prob + backward pass.
"""

from __future__ import annotations

from typing import Any

from agentgraph.core.errors import ConfigError
from agentgraph.train.config import RoleGRPOConfig

GIB = 1024**3
CUDA_OVERHEAD = int(1.5 * GIB)


def parameter_counts(model_path: str, lora_r: int, targets: tuple[str, ...]) -> tuple[int, int, Any]:
    """(base parameters, adapter parameters per role, config) of the model, built on the meta device
    (no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
    base = sum(p.numel() for p in model.parameters())
    lora = sum(
        lora_r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    )
    return base, lora, cfg


def trainer_bytes(model_path: str, config: RoleGRPOConfig, seq_len: int, *, bf16: bool = True) -> int:
    """The estimated peak GPU memory of role training (see the module docstring)."""
    c = config
    base, lora, cfg = parameter_counts(model_path, c.lora_r, c.lora_targets)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hidden, layers = int(text.hidden_size), int(text.num_hidden_layers)
    inter = int(getattr(text, "intermediate_size", 4 * hidden))
    vocab = int(text.vocab_size)
    act = 2
    per_layer = (12 * hidden + 3 * inter) * act
    ckpt = c.gradient_checkpointing is not False  # on by default on CUDA
    per_token = layers * hidden * act + 2 * per_layer if ckpt else layers * per_layer
    weights = base * (2 if bf16 else 4)
    adapters = 16 * lora * len(c.adapters)
    activations = min(c.micro_batch, c.group_size * c.problems_per_step) * seq_len * per_token
    head = 3 * c.logprob_chunk * vocab * 4
    return int(weights + adapters + activations + head + CUDA_OVERHEAD)


def colocated_utilization(need: int, total: int) -> float:
    """The engine's ``gpu_memory_utilization`` beside a trainer that needs ``need`` of ``total`` bytes.

    Examples
    --------
    >>> colocated_utilization(20 * GIB, 80 * GIB)
    0.75
    """
    share = 1.0 - need / total
    if share < 0.1:
        raise ConfigError(
            "gpu_memory_utilization",
            f"the trainer needs ~{need / GIB:.1f} GiB of the GPU's {total / GIB:.1f} GiB: "
            "no room for the engine",
            "lower --micro-batch or --max-model-len, or generate on a vllm serve fleet (--backend openai)",
        )
    return round(min(0.9, share), 3)
