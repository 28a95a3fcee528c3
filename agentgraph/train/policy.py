"""The LoRA policy of role GRPO: one adapter per trainable role on one shared base model.

:class:`LoRAPolicy` owns the base model with its adapters (PEFT), their optimizer, per-token
log-probs of completions under an adapter, and the update with TRL's GRPO objective
(:func:`agentgraph.train.loss.grpo_loss`). It knows nothing of teams, engines or files.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgraph.train.config import RoleGRPOConfig
from agentgraph.train.loss import grpo_loss, k3_kl


@dataclass
class Sample:
    """One trainable turn."""

    role: str
    prompt_ids: list[int]
    completion_ids: list[int]
    old_logps: list[float] | None
    advantage: float


class LoRAPolicy:
    """The base model at ``model_path`` with one LoRA adapter per role of ``config.train_roles``."""

    def __init__(self, model_path: str, config: RoleGRPOConfig) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        self.config = c = config
        torch.manual_seed(c.seed)
        base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        lora = LoraConfig(
            r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=0.0, target_modules=list(c.lora_targets)
        )
        roles = list(c.train_roles)
        self.model: Any = get_peft_model(base, lora, adapter_name=roles[0])
        for r in roles[1:]:
            self.model.add_adapter(r, lora)
        self.params = {
            r: [p for n, p in self.model.named_parameters() if "lora_" in n and f".{r}." in n] for r in roles
        }
        for ps in self.params.values():
            for p in ps:
                p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(
            [p for ps in self.params.values() for p in ps], lr=c.learning_rate, weight_decay=0.0
        )
        self.vocab = int(base.config.vocab_size)

    def load_weights(self, role: str, weights: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, weights, adapter_name=role)

    def logps(self, batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (B, T) of the completions under the active adapter, and the mask.

        Turns that share a prompt (the G sessions of one problem give a role the same round-0 prompt)
        share one forward pass over it: its KV cache is repeated across their completions, and the
        gradient still flows through the prompt's keys and values. Prompts are most of the tokens
        here (~40 prompt vs ~4 answer tokens), so this is several times cheaper than one padded
        sequence per turn, and equal to it (``tests/test_train_roles.py`` compares the two).
        """
        from trl.trainer.utils import selective_log_softmax

        t_max = max(len(s.completion_ids) for s in batch)
        rows: list[torch.Tensor] = [torch.empty(0)] * len(batch)
        by_prompt: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, s in enumerate(batch):
            by_prompt[tuple(s.prompt_ids)].append(i)
        temperature = self.config.temperature
        for prompt, idx in by_prompt.items():
            out = self.model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
            first = out.logits[:, -1:, :]  # predicts each completion's first token
            comps = [batch[i].completion_ids for i in idx]
            k, longest = len(idx), max(len(c) for c in comps)
            if longest > 1:
                cache = out.past_key_values
                cache.batch_repeat_interleave(k)
                ids = torch.zeros((k, longest - 1), dtype=torch.long)
                attn = torch.ones((k, len(prompt) + longest - 1), dtype=torch.long)
                for j, c in enumerate(comps):
                    ids[j, : len(c) - 1] = torch.tensor(c[:-1])
                    attn[j, len(prompt) + len(c) - 1 :] = 0
                rest = self.model(input_ids=ids, attention_mask=attn, past_key_values=cache, use_cache=False)
                logits = torch.cat([first.expand(k, 1, -1), rest.logits], dim=1)
            else:
                logits = first.expand(k, 1, -1)
            targets = torch.zeros((k, longest), dtype=torch.long)
            for j, c in enumerate(comps):
                targets[j, : len(c)] = torch.tensor(c)
            lp = selective_log_softmax(logits / temperature, targets)
            for j, i in enumerate(idx):
                rows[i] = torch.nn.functional.pad(lp[j, : len(comps[j])], (0, t_max - len(comps[j])))
        mask = torch.zeros((len(batch), t_max))
        for i, s in enumerate(batch):
            mask[i, : len(s.completion_ids)] = 1
        return torch.stack(rows), mask

    def update(
        self, samples: Sequence[Sample], *, measure_kl: bool = False
    ) -> tuple[float, float | None, float, dict[str, float]]:
        """One optimizer step over ``samples``; returns (loss, kl, clip ratio, seconds by phase).

        The KL to the base is measured when ``beta`` is set (it is in the loss) or ``measure_kl``.
        """
        c = self.config
        eps_high = c.epsilon_high if c.epsilon_high is not None else c.epsilon
        n_seq = len(samples)
        n_tok = sum(len(s.completion_ids) for s in samples)
        t_fwd = t_bwd = 0.0
        total, kls, clipped, counted = 0.0, [], 0.0, 0.0
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        by_role: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            by_role[s.role].append(s)
        for role, items in by_role.items():
            self.model.set_adapter(role)
            for k in range(0, len(items), c.micro_batch):
                mb = items[k : k + c.micro_batch]
                t0 = time.perf_counter()
                logps, mask = self.logps(mb)
                old = logps.detach().clone()
                for i, s in enumerate(mb):
                    if s.old_logps is not None:
                        old[i, : len(s.old_logps)] = torch.tensor(s.old_logps)
                ref = None
                if c.beta != 0.0 or measure_kl:
                    with torch.no_grad(), self.model.disable_adapter():
                        ref = self.logps(mb)[0]
                adv = torch.tensor([s.advantage for s in mb], dtype=torch.float32)
                loss = grpo_loss(
                    logps,
                    old,
                    adv,
                    mask,
                    loss_type=c.loss_type,
                    epsilon_low=c.epsilon,
                    epsilon_high=eps_high,
                    beta=c.beta,
                    ref_per_token_logps=ref,
                    max_completion_length=c.max_completion_length,
                    num_sequences=n_seq,
                    num_items=n_tok,
                )
                t1 = time.perf_counter()
                loss.backward()  # type: ignore[no-untyped-call]
                t_bwd += time.perf_counter() - t1
                t_fwd += t1 - t0
                total += float(loss.detach())
                with torch.no_grad():
                    ratio = torch.exp(logps - old)
                    a = adv.unsqueeze(1)
                    clip = ((ratio < 1 - c.epsilon) & (a < 0)) | ((ratio > 1 + eps_high) & (a > 0))
                    clipped += float((clip.float() * mask).sum())
                    counted += float(mask.sum())
                    if ref is not None:
                        kls.append((k3_kl(logps.detach(), ref, mask), float(mask.sum())))
        t1 = time.perf_counter()
        params = [p for ps in self.params.values() for p in ps]
        torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
        self.optimizer.step()
        t_bwd += time.perf_counter() - t1
        kl = sum(v * w for v, w in kls) / max(1.0, sum(w for _, w in kls)) if kls else None
        return total, kl, clipped / max(1.0, counted), {"logprob": t_fwd, "backward": t_bwd}
