"""The LoRA policy of role GRPO: one adapter per trainable role on one shared base model.

:class:`LoRAPolicy` owns the base model with its adapters (PEFT), their optimizer, per-token
log-probs of completions under an adapter, and the update with TRL's GRPO objective
(:func:`agentgraph.train.loss.grpo_loss`). It knows nothing of teams, engines or files.

It is an ``accelerate`` program: one code path for the CPU, one GPU and several processes
(``accelerate launch``).

- **Placement and precision**: the model goes to ``accelerator.device``; ``dtype="auto"`` is
  bfloat16 weights with bf16 autocast on CUDA and float32 on the CPU. Adapter weights, their
  gradients and AdamW state stay float32 (PEFT upcasts adapters).
- **Gradient checkpointing** is on by default on CUDA. transformers' checkpointed layers cannot take a
  KV cache, so with it on, each turn is one (prompt + completion) sequence; with it off, turns that
  share a prompt share one forward pass over it (the shared-prompt KV trick, several times cheaper on
  short answers).
- **Data parallel**: each process computes its share of the turns with the *global* loss normalisers,
  then the adapters' gradients are summed across processes (one all-reduce of one flat buffer) and
  every process takes the same clipped AdamW step. We do not wrap the model in DDP: the active
  adapter changes per micro-batch (one role at a time), so most adapter weights get no gradient in a
  given backward pass, which DDP only tolerates with ``find_unused_parameters`` (a graph traversal per
  backward) — and our gradients are tiny (LoRA) and reduced once per step anyway.
- **Memory-safe log-probs** (:mod:`agentgraph.train.logprobs`): the head runs over ``logprob_chunk``
  positions at a time, so ``[batch, length, vocab]`` logits never exist; micro-batches of
  ``micro_batch`` turns accumulate gradients.
- **Importance ratios**: the PPO ratio is against the trainer's own log-probs at rollout time (one
  update per rollout batch, as TRL with ``num_iterations=1``); the engine's sampling log-probs enter
  only through truncated importance sampling: each token's loss is weighted by
  ``min(π_trainer / π_engine, cap)`` (``importance_sampling="truncate"``, as verl / MARTI / TRL's
  ``token_truncate``), or tokens beyond the cap are masked (``"mask"``). Turns without engine
  log-probs (scripted rollouts) are on-policy and get weight 1; nothing is invented.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgraph.train.config import RoleGRPOConfig
from agentgraph.train.logprobs import token_logps
from agentgraph.train.loss import grpo_loss, k3_kl


@dataclass
class Sample:
    """One trainable turn; ``old_logps`` are the engine's sampling log-probs (``None``: none)."""

    role: str
    prompt_ids: list[int]
    completion_ids: list[int]
    old_logps: list[float] | None
    advantage: float


@dataclass
class UpdateStats:
    """One optimizer step, summed over every process."""

    loss: float
    kl: float | None
    clip_ratio: float
    is_ratio: float | None
    """mean trainer/engine probability ratio over tokens that have engine log-probs (1: they agree)"""
    is_truncated: float
    """share of those tokens whose ratio hit the cap"""
    grad_norm: float
    """of the adapters' summed gradient, before clipping"""
    seconds: dict[str, float]


def make_accelerator(dtype: str = "auto") -> Any:
    """The process's :class:`accelerate.Accelerator`: bf16 mixed precision on CUDA unless told."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    bf16 = dtype == "bfloat16" or (dtype == "auto" and cuda)
    return Accelerator(cpu=not cuda, mixed_precision="bf16" if bf16 else "no")


def split_for_ranks(samples: Sequence[Sample], world: int) -> list[list[Sample]]:
    """Turns dealt to ``world`` processes: turns that share a prompt stay together (one KV pass),
    and the prompt groups are placed largest first on the least loaded process (tokens)."""
    groups: dict[tuple[str, tuple[int, ...]], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.role, tuple(s.prompt_ids))].append(s)
    load = [0] * world
    shares: list[list[Sample]] = [[] for _ in range(world)]

    def cost(g: list[Sample]) -> int:
        return len(g[0].prompt_ids) + sum(len(s.completion_ids) for s in g)

    for g in sorted(groups.values(), key=cost, reverse=True):
        r = min(range(world), key=lambda i: load[i])
        shares[r].extend(g)
        load[r] += cost(g)
    return shares


class LoRAPolicy:
    """The base model at ``model_path`` with one LoRA adapter per role of ``config.train_roles`` (or
    one for all of them: ``shared_policy``); ``params`` and ``load_weights`` are by adapter name."""

    def __init__(self, model_path: str, config: RoleGRPOConfig, accelerator: Any = None) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        self.config = c = config
        self.accelerator = acc = accelerator or make_accelerator(c.dtype)
        self.device = acc.device
        cuda = self.device.type == "cuda"
        bf16 = c.dtype == "bfloat16" or (c.dtype == "auto" and cuda)
        torch.manual_seed(c.seed)
        base = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch.bfloat16 if bf16 else torch.float32
        )
        self.gradient_checkpointing = cuda if c.gradient_checkpointing is None else c.gradient_checkpointing
        if self.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.config.use_cache = False
        lora = LoraConfig(
            r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=0.0, target_modules=list(c.lora_targets)
        )
        roles = list(c.adapters)
        self.model: Any = get_peft_model(base, lora, adapter_name=roles[0])
        for r in roles[1:]:
            self.model.add_adapter(r, lora)
        self.model.to(self.device)
        # PEFT wraps layers in place, so these stay the adapted modules for every role
        causal: Any = self.model.get_base_model()
        self.decoder: Any = causal.get_decoder()
        self.head: Any = causal.get_output_embeddings()
        self.params = {
            r: [p for n, p in self.model.named_parameters() if "lora_" in n and f".{r}." in n] for r in roles
        }
        for ps in self.params.values():
            for p in ps:
                p.data = p.data.float()
                p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(
            [p for ps in self.params.values() for p in ps], lr=c.learning_rate, weight_decay=0.0
        )
        self.vocab = int(base.config.vocab_size)

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes)

    def load_weights(self, role: str, weights: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, weights, adapter_name=role)

    # -- log-probs ---------------------------------------------------------------------------------------
    def _head(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        c = self.config
        return token_logps(
            hidden,
            self.head,
            targets,
            temperature=c.temperature,
            top_p=c.top_p,
            top_k=c.top_k,
            chunk=c.logprob_chunk,
        )

    def logps(self, batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs (B, T) of the completions under the active adapter, and the mask.

        Without gradient checkpointing, turns that share a prompt (the G sessions of one problem give
        a role the same round-0 prompt) share one forward pass over it: its KV cache is repeated
        across their completions, and the gradient still flows through the prompt's keys and values.
        Prompts are most of the tokens here (~40 prompt vs ~4 answer tokens), so this is several
        times cheaper than one padded sequence per turn, and equal to it (``tests/test_train_roles.py``
        compares the two).
        """
        with self.accelerator.autocast():
            rows = self._padded(batch) if self.gradient_checkpointing else self._shared(batch)
        t_max = max(len(s.completion_ids) for s in batch)
        mask = torch.zeros((len(batch), t_max), device=self.device)
        for i, s in enumerate(batch):
            mask[i, : len(s.completion_ids)] = 1
        out = torch.stack([torch.nn.functional.pad(r, (0, t_max - r.numel())) for r in rows])
        return out, mask

    def _padded(self, batch: Sequence[Sample]) -> list[torch.Tensor]:
        decoder = self.decoder
        width = max(len(s.prompt_ids) + len(s.completion_ids) for s in batch)
        t_max = max(len(s.completion_ids) for s in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        pos = torch.zeros((len(batch), t_max), dtype=torch.long)
        targets = torch.zeros((len(batch), t_max), dtype=torch.long)
        for i, s in enumerate(batch):
            seq = s.prompt_ids + s.completion_ids
            p, n = len(s.prompt_ids), len(s.completion_ids)
            ids[i, : len(seq)] = torch.tensor(seq)
            attn[i, : len(seq)] = 1
            pos[i, :n] = torch.arange(p - 1, p - 1 + n)
            targets[i, :n] = torch.tensor(s.completion_ids)
        dev = self.device
        out = decoder(input_ids=ids.to(dev), attention_mask=attn.to(dev), use_cache=False)
        hidden = out.last_hidden_state
        picked = hidden.gather(1, pos.to(dev).unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        lp = self._head(picked, targets.to(dev))
        return [lp[i, : len(s.completion_ids)] for i, s in enumerate(batch)]

    def _shared(self, batch: Sequence[Sample]) -> list[torch.Tensor]:
        decoder = self.decoder
        dev = self.device
        rows: list[torch.Tensor] = [torch.empty(0)] * len(batch)
        by_prompt: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, s in enumerate(batch):
            by_prompt[tuple(s.prompt_ids)].append(i)
        for prompt, idx in by_prompt.items():
            out = decoder(input_ids=torch.tensor([prompt], device=dev), use_cache=True)
            first = out.last_hidden_state[:, -1:, :]  # predicts each completion's first token
            comps = [batch[i].completion_ids for i in idx]
            k, longest = len(idx), max(len(c) for c in comps)
            hidden = first.expand(k, 1, -1)
            if longest > 1:
                cache = out.past_key_values
                cache.batch_repeat_interleave(k)
                ids = torch.zeros((k, longest - 1), dtype=torch.long)
                attn = torch.ones((k, len(prompt) + longest - 1), dtype=torch.long)
                for j, c in enumerate(comps):
                    ids[j, : len(c) - 1] = torch.tensor(c[:-1])
                    attn[j, len(prompt) + len(c) - 1 :] = 0
                rest = decoder(
                    input_ids=ids.to(dev), attention_mask=attn.to(dev), past_key_values=cache, use_cache=False
                )
                hidden = torch.cat([hidden, rest.last_hidden_state], dim=1)
            targets = torch.zeros((k, longest), dtype=torch.long)
            for j, c in enumerate(comps):
                targets[j, : len(c)] = torch.tensor(c)
            lp = self._head(hidden, targets.to(dev))
            for j, i in enumerate(idx):
                rows[i] = lp[j, : len(comps[j])]
        return rows

    # -- the update --------------------------------------------------------------------------------------
    def importance_weights(
        self, logps: torch.Tensor, mb: Sequence[Sample]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token loss weights (π_trainer / π_engine truncated or masked at the cap), the raw
        ratios, and the mask of tokens that had engine log-probs (the others weigh 1)."""
        c = self.config
        engine = logps.detach().clone()
        has = torch.zeros_like(engine)
        for i, s in enumerate(mb):
            if s.old_logps is not None:
                n = len(s.old_logps)
                engine[i, :n] = torch.tensor(s.old_logps, device=engine.device, dtype=engine.dtype)
                has[i, :n] = 1
        ratio = torch.exp(logps.detach() - engine)
        if c.importance_sampling == "truncate":
            weights = ratio.clamp(max=c.importance_sampling_cap)
        elif c.importance_sampling == "mask":
            weights = ratio.masked_fill(ratio > c.importance_sampling_cap, 0.0)
        else:
            weights = torch.ones_like(ratio)
        return weights, ratio, has

    def update(
        self, samples: Sequence[Sample], *, n_seq: int, n_tok: int, measure_kl: bool = False
    ) -> UpdateStats:
        """One optimizer step over this process's ``samples`` of a batch of ``n_seq`` turns and
        ``n_tok`` completion tokens in all (the normalisers of TRL's loss over the whole batch).

        Every process must call it once per step, with or without samples: the gradient all-reduce
        is a collective. The KL to the base is measured when ``beta`` is set (it is in the loss) or
        ``measure_kl``.
        """
        c = self.config
        eps_high = c.epsilon_high if c.epsilon_high is not None else c.epsilon
        t_fwd = t_bwd = 0.0
        # loss, kl·w, w, clipped, counted, is-ratio sum, is tokens, truncated
        acc = torch.zeros(8, dtype=torch.float64)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        by_role: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            by_role[c.adapter_of(s.role)].append(s)
        for role, items in by_role.items():
            self.model.set_adapter(role)
            for k in range(0, len(items), c.micro_batch):
                mb = items[k : k + c.micro_batch]
                t0 = time.perf_counter()
                logps, mask = self.logps(mb)
                old = logps.detach()
                weights, is_ratio, has = self.importance_weights(logps, mb)
                ref = None
                if c.beta != 0.0 or measure_kl:
                    with torch.no_grad(), self.model.disable_adapter():
                        ref = self.logps(mb)[0]
                adv = torch.tensor([s.advantage for s in mb], dtype=torch.float32, device=self.device)
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
                    importance_weights=weights,
                )
                t1 = time.perf_counter()
                loss.backward()  # type: ignore[no-untyped-call]
                t_bwd += time.perf_counter() - t1
                t_fwd += t1 - t0
                with torch.no_grad():
                    ratio = torch.exp(logps - old)
                    a = adv.unsqueeze(1)
                    clip = ((ratio < 1 - c.epsilon) & (a < 0)) | ((ratio > 1 + eps_high) & (a > 0))
                    m = mask * has
                    acc[0] += float(loss.detach())
                    acc[3] += float((clip.float() * mask).sum())
                    acc[4] += float(mask.sum())
                    acc[5] += float((is_ratio * m).sum())
                    acc[6] += float(m.sum())
                    acc[7] += float(((is_ratio > c.importance_sampling_cap).float() * m).sum())
                    if ref is not None:
                        acc[1] += k3_kl(logps.detach(), ref, mask) * float(mask.sum())
                        acc[2] += float(mask.sum())
        t1 = time.perf_counter()
        params = [p for ps in self.params.values() for p in ps]
        # every adapter steps every step (a role without turns this step: momentum only), as under
        # DDP, so one process and several take the same steps
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.world > 1:
            grads = [p.grad for p in params if p.grad is not None]
            flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="sum")
            i = 0
            for g in grads:
                g.copy_(flat[i : i + g.numel()].view_as(g))
                i += g.numel()
            acc = self.accelerator.reduce(acc.to(self.device), reduction="sum").cpu()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm))
        self.optimizer.step()
        t_bwd += time.perf_counter() - t1
        kl = float(acc[1] / acc[2]) if acc[2] > 0 else None
        return UpdateStats(
            loss=float(acc[0]),
            kl=kl,
            clip_ratio=float(acc[3] / max(1.0, float(acc[4]))),
            is_ratio=float(acc[5] / acc[6]) if acc[6] > 0 else None,
            is_truncated=float(acc[7] / acc[6]) if acc[6] > 0 else 0.0,
            grad_norm=grad_norm,
            seconds={"logprob": t_fwd, "backward": t_bwd},
        )
