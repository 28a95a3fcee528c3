"""The grouped CPU LoRA ops compute what vLLM's own torch ops compute."""

from __future__ import annotations

import pytest
import torch

from agentgraph.backends import cpu_lora

lora_ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")


@pytest.mark.parametrize("slots", [[0], [1, 0, 2]])
def test_grouped_ops_equal_vllm(slots: list[int]) -> None:
    g = torch.Generator().manual_seed(0)
    n, d_in, r, d_out, n_slots = 9, 12, 4, 10, 3
    indices = torch.tensor([slots[i % len(slots)] for i in range(n)])
    x = torch.randn((n, d_in), generator=g)
    a = torch.randn((n_slots, 1, r, d_in), generator=g)
    b = torch.randn((n_slots, 1, d_out, r), generator=g)
    ours, theirs = torch.zeros((n, r)), torch.zeros((n, r))
    cpu_lora.bgmv_shrink(x, a, ours, indices, 0.5)
    lora_ops.bgmv_shrink(x, a, theirs, indices, 0.5)
    assert torch.allclose(ours, theirs, atol=1e-5)
    y_ours, y_theirs = torch.ones((n, d_out)), torch.ones((n, d_out))
    cpu_lora.bgmv_expand(ours, b, y_ours, indices, True)
    lora_ops.bgmv_expand(theirs, b, y_theirs, indices, True)
    assert torch.allclose(y_ours, y_theirs, atol=1e-5)
    s_ours, s_theirs = torch.zeros((n, 3 * d_out)), torch.zeros((n, 3 * d_out))
    cpu_lora.bgmv_expand_slice(ours, b, s_ours, indices, d_out, d_out, False)
    lora_ops.bgmv_expand_slice(theirs, b, s_theirs, indices, d_out, d_out, False)
    assert torch.allclose(s_ours, s_theirs, atol=1e-5)
    assert s_ours[:, :d_out].abs().sum() == 0 and s_ours[:, d_out : 2 * d_out].abs().sum() > 0


def test_no_adapter_rows_get_no_lora_term() -> None:
    x = torch.randn((3, 4))
    a = torch.randn((2, 1, 2, 4))
    out = torch.zeros((3, 2))
    cpu_lora.bgmv_shrink(x, a, out, torch.tensor([0, -1, 1]), 1.0)
    assert out[1].abs().sum() == 0 and out[0].abs().sum() > 0 and out[2].abs().sum() > 0


def test_plugin_is_registered_for_vllm() -> None:
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert names.get("agentgraph_cpu_lora") == "agentgraph.backends.cpu_lora:register"
