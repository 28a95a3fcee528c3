"""Per-token log-probs of sampled tokens under the *sampling* distribution, without full logits.

The engine samples from ``softmax(top_k_top_p(logits / T))``; with ``logprobs_mode =
"processed_logprobs"`` vLLM reports log-probs of exactly that distribution. :func:`token_logps`
computes the same numbers on the trainer's side: temperature, then vLLM's top-k and top-p masks
(the same sort-and-cumsum rule as ``vllm.v1.sample.ops.topk_topp_sampler``), then TRL's
``selective_log_softmax``. So the importance ratio between engine and trainer is 1 up to numerics
for any temperature / top-p / top-k a user picks, not only at T = 1 with no truncation.

Memory: the language-model head runs over ``chunk`` token positions at a time, and under autograd
each chunk is checkpointed (its logits are recomputed in the backward pass instead of kept). Peak
memory of the head is ``chunk × vocab`` floats whatever the batch and completion length, instead of
``batch × length × vocab`` (Qwen's 151,936-token vocabulary makes the latter ~20 GB for eight
4k-token completions). ``bench/train_memory.py`` measures both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def sampling_mask(logits: torch.Tensor, top_p: float = 1.0, top_k: int | None = None) -> torch.Tensor | None:
    """True where vLLM's top-k / top-p would remove a token (rows are positions), else ``None``."""
    vocab = logits.size(-1)
    use_k = top_k is not None and 0 < top_k < vocab
    if not use_k and top_p >= 1.0:
        return None
    with torch.no_grad():
        srt, idx = logits.sort(dim=-1, descending=False)
        drop = torch.zeros_like(srt, dtype=torch.bool)
        if use_k:
            assert top_k is not None
            drop |= srt < srt[..., vocab - top_k : vocab - top_k + 1]
        if top_p < 1.0:
            probs = srt.masked_fill(drop, float("-inf")).softmax(dim=-1)
            cut = probs.cumsum(dim=-1) <= 1 - top_p
            cut[..., -1] = False  # at least one token stays
            drop |= cut
        return torch.zeros_like(drop).scatter(-1, idx, drop)


def _chunk_logps(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    temperature: float,
    top_p: float,
    top_k: int | None,
) -> torch.Tensor:
    from trl.trainer.utils import selective_log_softmax

    logits = F.linear(hidden, weight, bias).float() / temperature
    drop = sampling_mask(logits, top_p, top_k)
    if drop is not None:
        logits = logits.masked_fill(drop, float("-inf"))
    out: torch.Tensor = selective_log_softmax(logits, targets)
    return out


def token_logps(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Log-probs ``(..., T)`` of ``targets`` given the final hidden states ``(..., T, H)``.

    ``head`` is the model's output embedding (``model.get_output_embeddings()``). Equal to
    ``selective_log_softmax(processed(head(hidden) / T), targets)`` computed in one piece
    (``tests/test_train_memory.py``), in ``chunk``-position pieces.
    """
    weight: torch.Tensor = head.weight  # type: ignore[assignment]
    bias: torch.Tensor | None = getattr(head, "bias", None)
    shape = targets.shape
    h = hidden.reshape(-1, hidden.size(-1))
    t = targets.reshape(-1)
    pieces = []
    for s in range(0, t.numel(), chunk):
        args = (h[s : s + chunk], t[s : s + chunk], weight, bias, temperature, top_p, top_k)
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            pieces.append(checkpoint(_chunk_logps, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(*args))
    return torch.cat(pieces).reshape(shape)
