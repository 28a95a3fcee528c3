"""Faster LoRA kernels for vLLM's CPU build, installed as a vLLM general plugin.

vLLM's CPU LoRA ops (``vllm.lora.ops.torch_ops``) gather a full copy of the adapter matrix *per
token* (``lora_weights[indices]``, then a batched einsum): for a 2,000-token prefill with rank-16
adapters on seven projections of 30 layers that is tens of GB of copies, and generation with an
adapter ran 2.7× slower than without one here (16 vs 44 tokens/s, docs/benchmarks.md). These
versions group the tokens by adapter slot and do one matmul per slot — the same arithmetic. A
negative index means "no adapter" (as in vLLM's GPU kernels): those rows get no LoRA term.

vLLM loads ``vllm.general_plugins`` entry points in every process it starts (the engine core and its
workers too), which is the only way to reach the worker; ``pyproject.toml`` registers
:func:`register`. It patches nothing unless the platform is CPU. ``AGENTGRAPH_CPU_LORA=0`` turns it off.
"""

from __future__ import annotations

import os

import torch


def _per_slot(
    inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``out[b] = inputs[b] @ weights[indices[b]].T`` with one matmul per distinct slot."""
    w = weights.squeeze(1) if weights.dim() == 4 else weights
    x = inputs.to(dtype)
    out = torch.zeros((x.shape[0], w.shape[1]), dtype=dtype, device=x.device)
    slots = torch.unique(indices)
    if slots.numel() == 1:
        s = int(slots[0])
        if s >= 0:
            out = x @ w[s].to(dtype).T
        return out
    for s in slots.tolist():
        if s < 0:
            continue
        rows = indices == s
        out[rows] = x[rows] @ w[s].to(dtype).T
    return out


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    outputs = _per_slot(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    outputs = _per_slot(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    outputs = _per_slot(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs


def register() -> None:
    """vLLM general plugin: swap the CPU LoRA ops for the grouped ones (CPU platform only)."""
    if os.environ.get("AGENTGRAPH_CPU_LORA", "1") == "0":
        return
    try:
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return
        import vllm.lora.ops.torch_ops as ops
        import vllm.lora.ops.torch_ops.lora_ops as lora_ops
        import vllm.lora.punica_wrapper.punica_cpu as punica_cpu
    except ImportError:  # another vLLM layout: keep vLLM's own ops
        return
    for name, fn in (
        ("bgmv_expand", bgmv_expand),
        ("bgmv_shrink", bgmv_shrink),
        ("bgmv_expand_slice", bgmv_expand_slice),
    ):
        for module in (lora_ops, ops, punica_cpu):
            if hasattr(module, name):
                setattr(module, name, fn)
