"""A stand-in for a hub model: a tiny random-weight Qwen2 with the embedded tokenizer.

Tests and benches that need a second real model on a machine that downloads nothing build one here
(with its own chat template, say, so a mixed team's two engines render prompts differently). Needs
torch and transformers (the ``train`` extra); imported only when called.
"""

from __future__ import annotations

from pathlib import Path


def tiny_model(
    root: Path,
    vocab: int | None = None,
    *,
    name: str | None = None,
    chat_template: str | None = None,
    max_positions: int = 16384,
    tie_word_embeddings: bool = False,
) -> str:
    """A random-weight 2-layer Qwen2 (hidden 128, head_dim 64) with the embedded tokenizer and ``vocab``
    tokens (default: the tokenizer's), saved under ``root`` once. ``name`` is the directory (a name
    like ``tiny-R1-Distill-Qwen`` selects that family's preset); ``chat_template`` replaces the
    tokenizer's. The one builder of the tests' and benches' stand-in for a hub model."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from agentgraph.core.models import provision

    tok = AutoTokenizer.from_pretrained(provision())
    if chat_template is not None:
        tok.chat_template = chat_template
    vocab = vocab or len(tok)
    out = root / (name or f"tiny-qwen2-v{vocab}")
    if (out / "config.json").is_file():
        return str(out)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_positions,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=tie_word_embeddings,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)  # type: ignore[no-untyped-call]
    tok.save_pretrained(out)
    return str(out)
