"""The GRPO objective, exactly as TRL's ``GRPOTrainer`` computes it, on tensors we already have.

TRL keeps its loss inside ``GRPOTrainer._compute_loss`` (a method that runs the model, reads the
trainer's state and logs metrics), so it cannot be called on rollouts that a team produced. This is the
same arithmetic for the three loss types we support, with the normalisers passed in explicitly so a
batch can be split into micro-batches (one per role) and still give TRL's whole-batch value.
``tests/test_train_roles.py`` checks it against TRL's own method to 1e-6. Token log-probs come from
TRL's :func:`trl.trainer.utils.selective_log_softmax`.
"""

from __future__ import annotations

import torch

from agentgraph.train.config import LossType


def grpo_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: LossType = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    ref_per_token_logps: torch.Tensor | None = None,
    max_completion_length: int | None = None,
    num_sequences: int | None = None,
    num_items: float | None = None,
    importance_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """TRL's clipped token-ratio objective (``importance_sampling_level="token"``).

    Shapes: log-probs and ``mask`` are (B, T), ``advantages`` is (B,). For micro-batching, pass the
    whole batch's ``num_sequences`` (``grpo``, ``dr_grpo``) and completion-token count ``num_items``
    (``dapo``); by default they are this batch's own, which is what TRL computes for one batch.
    ``importance_weights`` (B, T) multiply the clipped per-token loss before the KL term, as TRL's
    ``vllm_importance_sampling_correction`` does (truncated π_trainer / π_engine ratios).
    """
    mask = mask.to(per_token_logps.dtype)
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    coef_1 = torch.exp(per_token_logps - old_per_token_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    if importance_weights is not None:
        per_token_loss = per_token_loss * importance_weights
    if beta != 0.0:
        if ref_per_token_logps is None:
            raise ValueError("beta != 0 needs ref_per_token_logps (the base model's log-probs)")
        d = ref_per_token_logps - per_token_logps
        per_token_loss = per_token_loss + beta * (torch.exp(d) - d - 1)  # k3 estimator, as TRL
    b = per_token_logps.size(0) if num_sequences is None else num_sequences
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / b
    if loss_type == "dr_grpo":
        length = per_token_logps.size(1) if max_completion_length is None else max_completion_length
        return (per_token_loss * mask).sum() / (b * length)
    if loss_type == "dapo":
        n = mask.sum() if num_items is None else mask.new_tensor(float(num_items))
        return (per_token_loss * mask).sum() / n.clamp(min=1.0)
    raise ValueError(f"unknown loss_type {loss_type!r}: use grpo, dapo or dr_grpo")


def k3_kl(per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean k3 KL(policy ‖ ref) over the unmasked tokens (what TRL logs as ``kl``)."""
    d = ref_per_token_logps - per_token_logps
    kl = torch.exp(d) - d - 1
    m = mask.to(kl.dtype)
    return float((kl * m).sum() / m.sum().clamp(min=1.0))
