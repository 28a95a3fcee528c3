"""Log-probs under the sampling distribution, in chunks; the two forward paths; the memory formula;
and the trainer on CUDA (``gpu``: skipped without it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from agentgraph.core.errors import ConfigError
from agentgraph.testing.tiny import tiny_model
from agentgraph.train import RoleGRPOConfig
from agentgraph.train.logprobs import sampling_mask, token_logps
from agentgraph.train.memory import GIB, colocated_utilization, trainer_bytes
from agentgraph.train.policies.lora import LoRAPolicy, Sample
from tests.conftest import ON_GPU

SETTINGS = [(1.0, 1.0, None), (0.7, 0.9, None), (0.7, 0.9, 5), (1.3, 1.0, 3)]


def reference(
    hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, t: float, p: float, k: int | None
) -> torch.Tensor:
    logits = head(hidden) / t
    flat = logits.reshape(-1, logits.size(-1))
    drop = sampling_mask(flat.detach(), p, k)
    if drop is not None:
        flat = flat.masked_fill(drop, float("-inf"))
    lp = flat.log_softmax(-1).gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    return lp.reshape(targets.shape)


@pytest.mark.parametrize(("t", "p", "k"), SETTINGS)
def test_chunks_equal_one_piece_values_and_gradients(t: float, p: float, k: int | None) -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 7, 16, requires_grad=True)
    with torch.no_grad():  # targets inside the nucleus, as sampled tokens are
        targets = (head(hidden) / t).argmax(-1)
    ref = reference(hidden, head, targets, t, p, k)
    (g_ref_h, g_ref_w) = torch.autograd.grad(ref.sum(), [hidden, head.weight])
    got = token_logps(hidden, head, targets, temperature=t, top_p=p, top_k=k, chunk=4)
    (g_h, g_w) = torch.autograd.grad(got.sum(), [hidden, head.weight])
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.allclose(g_h, g_ref_h, atol=1e-6) and torch.allclose(g_w, g_ref_w, atol=1e-6)


@pytest.mark.parametrize(("p", "k"), [(0.9, None), (0.5, 7), (1.0, 3)])
def test_mask_is_vllms(p: float, k: int | None) -> None:
    """Our top-k / top-p mask removes exactly the tokens vLLM's sampler removes."""
    ops = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")
    torch.manual_seed(1)
    logits = torch.randn(6, 40)
    theirs = ops.apply_top_k_top_p_pytorch(
        logits.clone(),
        torch.full((6,), k, dtype=torch.long) if k else None,
        torch.full((6,), p) if p < 1 else None,
    )
    ours = sampling_mask(logits, p, k)
    assert ours is not None
    assert torch.equal(ours, torch.isinf(theirs))


def tiny_qwen2(root: Path, vocab: int | None = None) -> str:
    return tiny_model(root, vocab)


def batch() -> list[Sample]:
    p1, p2 = [5, 6, 7, 8, 9, 10], [11, 12, 13]
    return [
        Sample("solver", p1, [20, 21, 22], [-1.0, -1.0, -1.0], 1.0),
        Sample("solver", p1, [23], None, -1.0),
        Sample("solver", p2, [24, 25, 26, 27], None, 0.5),
        Sample("solver", p1, [20, 28, 29, 30, 31], None, -0.5),
    ]


@pytest.fixture
def fp32_everywhere() -> Iterator[None]:
    """float32 on CUDA too (where the default is bf16, whose rounding these exact comparisons are not
    about); accelerate's mixed-precision setting is per process, so a fresh state before and after."""
    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.mark.usefixtures("fp32_everywhere")
def test_checkpointed_path_equals_shared_prompt_path(tmp_path: Path) -> None:
    model = tiny_qwen2(tmp_path / "m")
    out = {}
    for gc in (False, True):
        config = RoleGRPOConfig(
            train_roles=("solver",), lora_r=2, gradient_checkpointing=gc, top_p=0.9, dtype="float32"
        )
        policy = LoRAPolicy(model, config)
        with torch.no_grad():
            for n, p in policy.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
        policy.model.train()
        lp, mask = policy.logps(batch())
        lp.sum().backward()
        grads = torch.cat([p.grad.flatten() for p in policy.params["solver"] if p.grad is not None])
        out[gc] = (lp.detach() * mask, grads)
    assert torch.allclose(out[False][0], out[True][0], atol=1e-5)
    assert torch.allclose(out[False][1], out[True][1], atol=1e-5, rtol=1e-4)


def test_trainer_memory_estimate(tmp_path: Path) -> None:
    model = tiny_qwen2(tmp_path / "m")
    c = RoleGRPOConfig(train_roles=("a", "b"), lora_r=4)
    short, long = trainer_bytes(model, c, 512), trainer_bytes(model, c, 4096)
    assert long > short > int(1.5 * GIB)  # the CUDA overhead is in, activations grow with length
    assert colocated_utilization(short, 80 * GIB) <= 0.9
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        colocated_utilization(79 * GIB, 80 * GIB)


gpu = pytest.mark.skipif(not ON_GPU, reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_trainer_on_cuda_bf16_with_checkpointing(tmp_path: Path) -> None:
    model = tiny_qwen2(tmp_path / "m")
    policy = LoRAPolicy(model, RoleGRPOConfig(train_roles=("solver",), lora_r=4, learning_rate=1e-2))
    assert policy.device.type == "cuda" and policy.gradient_checkpointing
    assert next(policy.model.get_base_model().parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 and p.is_cuda for p in policy.params["solver"])
    before = [p.detach().clone() for p in policy.params["solver"]]
    stats = policy.update(batch(), n_seq=4, n_tok=13)
    assert stats.grad_norm > 0 and stats.loss == stats.loss  # finite, not NaN
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.params["solver"], strict=True))
    assert stats.is_ratio is not None  # the first sample carried engine log-probs


@pytest.mark.gpu
@gpu
def test_logprob_pass_memory_grows_with_length_not_vocab_times_length(tmp_path: Path) -> None:
    vocab = 151_936  # Qwen's
    model = tiny_qwen2(tmp_path / "m", vocab=vocab)
    policy = LoRAPolicy(model, RoleGRPOConfig(train_roles=("solver",), lora_r=4, logprob_chunk=256))
    peaks = []
    lengths = (512, 1024, 2048)
    for n in lengths:
        g = torch.Generator().manual_seed(n)
        comp = torch.randint(0, 30_000, (n,), generator=g).tolist()
        samples = [Sample("solver", [1, 2, 3], comp, None, 1.0) for _ in range(2)]
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        lp, _ = policy.logps(samples)
        lp.sum().backward()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        policy.optimizer.zero_grad(set_to_none=True)
    full = [2 * n * vocab * 4 for n in lengths]  # the float32 logits alone, had they been kept
    # The head's chunks are a constant (~3 × 256 × vocab × 4 bytes ≈ 0.47 GB here, more than a
    # quarter of the full logits at 512 tokens — so the bound is on the longest length and on growth):
    # doubling the length adds the tiny model's activations, not another length × vocab of logits.
    growth = [peaks[1] - peaks[0], peaks[2] - peaks[1]]
    mb = [round(p / 2**20) for p in peaks], [round(f / 2**20) for f in full]
    detail = f"peaks {mb[0]} MB; full logits {mb[1]} MB"
    assert peaks[-1] < full[-1] / 4, detail
    assert all(g < (full[i + 1] - full[i]) / 8 for i, g in enumerate(growth)), detail


def test_the_gpu_configuration_on_the_cpu_matches_the_fp32_step(tmp_path: Path) -> None:
    """bf16 base weights and bf16 autocast with fp32 adapters, gradient checkpointing and a small head
    chunk — the CUDA configuration, run on this CPU — take the same step as fp32 (within bf16's
    precision: token log-probs within 0.05 nats, adapter update direction cosine ≥ 0.98; measured
    here 0.9925)."""
    model = tiny_qwen2(tmp_path / "m")
    steps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, settings in {
        "fp32": {"dtype": "float32", "gradient_checkpointing": False},
        "gpu-like": {"dtype": "bfloat16", "gradient_checkpointing": True, "logprob_chunk": 16},
    }.items():
        config = RoleGRPOConfig(train_roles=("solver",), lora_r=4, learning_rate=1e-3, seed=0, **settings)
        AcceleratorState._reset_state(True)  # one mixed-precision setting per process, so: a fresh state
        policy = LoRAPolicy(model, config)
        with torch.no_grad():  # the same non-zero adapter in both, so the step has a gradient everywhere
            g = torch.Generator().manual_seed(0)
            for n, p in sorted(policy.model.named_parameters()):
                if "lora_" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        if name == "gpu-like":
            assert next(policy.model.get_base_model().parameters()).dtype == torch.bfloat16
            assert policy.gradient_checkpointing
            assert all(p.dtype == torch.float32 for p in policy.params["solver"])
        with torch.no_grad(), policy.accelerator.autocast():
            lp, mask = policy.logps(batch())
        before = torch.cat([p.detach().flatten().clone() for p in policy.params["solver"]])
        stats = policy.update(batch(), n_seq=4, n_tok=13)
        assert stats.grad_norm > 0
        after = torch.cat([p.detach().flatten() for p in policy.params["solver"]])
        steps[name] = ((lp.float() * mask)[mask.bool()], after - before)
    AcceleratorState._reset_state(True)  # the next test's trainer gets the process default again
    (lp32, step32), (lp16, step16) = steps["fp32"], steps["gpu-like"]
    assert (lp16 - lp32).abs().max().item() <= 0.05, (lp16, lp32)
    cosine = torch.nn.functional.cosine_similarity(step16, step32, dim=0).item()
    assert cosine >= 0.98, cosine


@pytest.mark.usefixtures("fp32_everywhere")
def test_micro_batches_take_the_same_step_as_one_batch(tmp_path: Path) -> None:
    """Gradients accumulated over micro-batches of 1 and 3 turns equal one batch of 4: the loss is
    normalised by the whole batch's turns and tokens, so splitting it never rescales the step."""
    model = tiny_qwen2(tmp_path / "m")
    steps = {}
    for mb in (16, 3, 1):
        config = RoleGRPOConfig(
            train_roles=("solver",), lora_r=4, learning_rate=1e-3, seed=0, micro_batch=mb, dtype="float32"
        )
        policy = LoRAPolicy(model, config)
        with torch.no_grad():  # a non-zero adapter, the same in every run, so every weight gets a gradient
            g = torch.Generator().manual_seed(0)
            for _, p in sorted(policy.model.named_parameters()):
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        stats = policy.update(batch(), n_seq=4, n_tok=13)
        # the accumulated gradient, not the AdamW step (whose first step is ±lr nearly everywhere)
        grads = [p.grad for p in policy.params["solver"]]
        assert all(gr is not None for gr in grads)
        steps[mb] = (torch.cat([gr.flatten() for gr in grads if gr is not None]), stats)
    whole, whole_stats = steps[16]
    assert whole.abs().max() > 0
    for mb in (3, 1):
        step, stats = steps[mb]
        assert torch.allclose(step, whole, atol=1e-7, rtol=1e-4), (mb, (step - whole).abs().max())
        assert stats.grad_norm == pytest.approx(whole_stats.grad_norm, rel=1e-4)
