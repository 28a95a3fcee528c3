"""Role GRPO: one LoRA adapter per trainable role, trained from real team sessions.

TRL's ``GRPOTrainer`` trains one policy with one advantage per completion. A team has several roles
and several turns per session, so credit is given per *turn*:

- **rollouts** are real sessions of the team (any topology) — ``group_size`` sessions per problem, all
  in flight together through the shared scheduler — with each trainable role served its current
  adapter per request; every turn keeps prompt ids, completion ids and the engine's sampling log-probs;
- **reward** of a turn = ``α · team correct + (1 − α) · own answer correct + format_reward · parseable``;
- **advantages** are normalised within groups of the same (problem, role, round) across the G
  sessions: ``r − mean``, divided by the group's std (``scale_rewards="group"``), the batch's std
  (``"batch"``) or nothing (``"none"``); groups whose rewards are all equal carry no signal and are
  dropped (``drop_zero_variance``);
- **loss** is TRL's GRPO objective (:func:`agentgraph.train.loss.grpo_loss`, checked against TRL):
  token ratios against the rollout log-probs, clipping with ε_low/ε_high, optional k3 KL to the
  base (β, default 0), ``dapo`` token normalisation by default; one optimizer step per rollout batch;
- **hot reload**: after each step the adapters are saved and served under new names
  (``solver@3``), so the next rollouts use them with no engine restart;
- **held-out evaluation** every ``eval_every`` steps (greedy); the best adapters are kept
  (``best/``), because GRPO on a tiny model learns fast and can collapse later;
- **checkpoints** (adapters, optimizer, step, RNG, best) are written atomically; ``resume=True``
  continues from the last one and trims the log to it.

Rollouts must carry the policy model's token ids: the vLLM backend does, and the scripted backend does
when given the model's tokenizer (``Scripted(tokenizer=...)``). Without engine log-probs (scripted) the
update is on-policy: the old log-probs are the current model's, as in TRL without vLLM. Sampling for
rollouts uses ``top_p=1`` and the configured temperature (default 1.0, where vLLM's raw log-probs equal
the sampling distribution's).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from agentgraph.answers import is_correct
from agentgraph.backends.base import Adapter, Backend, GenerationRequest
from agentgraph.datasets import Problem
from agentgraph.errors import ConfigError
from agentgraph.messages import ChatMessage
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.team import Team
from agentgraph.train import steplog
from agentgraph.train.loss import LossType, grpo_loss, k3_kl
from agentgraph.transcript import SessionResult

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class RoleGRPOConfig(BaseModel):
    """Settings for :class:`RoleGRPOTrainer` (names follow TRL's ``GRPOConfig`` where they overlap)."""

    model_config = ConfigDict(extra="forbid")

    train_roles: tuple[str, ...] = Field(("solver",), min_length=1)
    group_size: int = Field(4, ge=2, description="sessions per problem (G)")
    problems_per_step: int = Field(8, ge=1)
    steps: int = Field(20, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_targets: tuple[str, ...] = LORA_TARGETS
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the team outcome in a turn's reward")
    format_reward: float = Field(0.0, ge=0, description="added when the turn's answer parses")
    scale_rewards: Literal["group", "batch", "none"] = "group"
    drop_zero_variance: bool = True
    loss_type: LossType = "dapo"
    epsilon: float = Field(0.2, gt=0, description="ε_low")
    epsilon_high: float | None = Field(None, gt=0, description="ε_high; default ε_low")
    beta: float = Field(0.0, ge=0, description="k3 KL coefficient to the base model")
    kl_every: int = Field(
        5, ge=0, description="with β = 0, measure KL to the base every N steps (a no-grad forward); 0: never"
    )
    temperature: float = Field(1.0, gt=0)
    max_completion_length: int = Field(32, ge=1)
    micro_batch: int = Field(16, ge=1, description="turns per forward/backward")
    eval_every: int = Field(5, ge=0, description="held-out evaluation every N steps (0: only at the ends)")
    eval_temperature: float = Field(0.0, ge=0)
    keep_best: bool = True
    checkpoint_every: int = Field(1, ge=1)
    keep_versions: int = Field(2, ge=1, description="served adapter versions kept on disk")
    time_limit_min: float | None = Field(None, gt=0, description="stop after this many minutes of training")
    seed: int = 0


class RoleStepLog(steplog.StepRecord):
    model_config = ConfigDict(extra="forbid")

    reward: float
    team_accuracy: float
    turn_accuracy: float
    tokens: float = Field(description="completion tokens per session")
    loss: float
    kl: float | None
    clip_ratio: float
    turns: int
    groups_kept: int
    groups_dropped: int
    heldout_accuracy: float | None = None
    seconds: dict[str, float] = Field(description="rollout / logprob / backward / reload")


@dataclass
class Sample:
    """One trainable turn."""

    role: str
    prompt_ids: list[int]
    completion_ids: list[int]
    old_logps: list[float] | None
    advantage: float


def turn_rewards(result: SessionResult, config: RoleGRPOConfig) -> dict[str, float]:
    """Turn id → reward, for the agent turns of trainable roles."""
    team = float(bool(result.correct))
    out: dict[str, float] = {}
    for t in result.turns:
        if t.kind != "agent" or t.role not in config.train_roles or not t.ok:
            continue
        own = float(result.gold is not None and is_correct(t.answer, result.gold))
        fmt = config.format_reward * float(t.answer is not None)
        out[t.id] = config.alpha * team + (1 - config.alpha) * own + fmt
    return out


def group_advantages(
    groups: dict[Any, list[tuple[str, float]]], config: RoleGRPOConfig
) -> tuple[dict[str, float], int, int]:
    """Turn id → advantage, normalised within each group; also (groups kept, groups dropped)."""
    all_rewards = [r for members in groups.values() for _, r in members]
    batch_std = float(np.std(all_rewards, ddof=1)) if len(all_rewards) > 1 else 0.0
    out: dict[str, float] = {}
    kept = dropped = 0
    for members in groups.values():
        rewards = np.array([r for _, r in members], dtype=np.float64)
        if len(rewards) < 2 or (config.drop_zero_variance and np.ptp(rewards) == 0):
            dropped += 1
            continue
        kept += 1
        adv = rewards - rewards.mean()
        if config.scale_rewards == "group":
            adv = adv / (rewards.std(ddof=1) + 1e-4)  # TRL: unbiased std, eps 1e-4
        elif config.scale_rewards == "batch":
            adv = adv / (batch_std + 1e-4)
        for (tid, _), a in zip(members, adv.tolist(), strict=True):
            out[tid] = a
    return out, kept, dropped


def load_adapters(run: str | Path) -> tuple[dict[str, Adapter], int]:
    """The adapters a role-training run exported (``adapters.json``) and their LoRA rank."""
    root = Path(run)
    index = root / "adapters.json"
    if not index.is_file():
        raise ConfigError(
            "adapters", f"{root} has no adapters.json", "give the --out folder of `agentgraph train roles`"
        )
    data = json.loads(index.read_text(encoding="utf-8"))
    adapters = {
        role: Adapter(name=f"{role}@{root.name}/{Path(p).parent.name}", path=str(root / p))
        for role, p in data["roles"].items()
    }
    for a in adapters.values():
        if not Path(a.path).is_dir():
            raise ConfigError(
                "adapters", f"adapter folder {a.path} is missing", "re-run or re-export training"
            )
    return adapters, int(data["rank"])


class RoleGRPOTrainer:
    """Trains ``config.train_roles`` of ``team`` on ``problems`` with rollouts on ``backend``.

    ``model`` is the base model's path (default: the backend's, i.e. the embedded model). ``heldout``
    problems are evaluated greedily every ``eval_every`` steps with the current adapters.
    """

    def __init__(
        self,
        team: Team,
        problems: Sequence[Problem],
        backend: Backend,
        config: RoleGRPOConfig | None = None,
        *,
        heldout: Sequence[Problem] = (),
        model: str | None = None,
        out: str | Path | None = None,
    ) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from agentgraph.models import resolve

        self.config = c = config or RoleGRPOConfig()
        if not problems:
            raise ConfigError("dataset", "no training problems", "give at least one problem")
        team_roles = {team.topology.role_of(a) for a in team.topology.agents}
        for r in c.train_roles:
            if r not in team_roles:
                raise ConfigError(
                    "train_roles",
                    f"no agent of the team has role {r!r}",
                    f"train some of {', '.join(sorted(team_roles))}",
                )
        self.lora = bool(getattr(backend, "enable_lora", False))
        if self.lora and c.lora_r > int(getattr(backend, "max_lora_rank", c.lora_r)):
            raise ConfigError(
                "lora_r", f"{c.lora_r} exceeds the engine's max_lora_rank", "raise VLLM(max_lora_rank=...)"
            )
        self.team = team
        self.problems = list(problems)
        self.heldout = list(heldout)
        self.backend = backend
        self.out = Path(out) if out is not None else None
        self._scratch: Path | None = None
        self.model_path = model or getattr(backend, "model_path", "") or resolve(None)
        torch.manual_seed(c.seed)
        base = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
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
        self.step = 0
        self.log: list[RoleStepLog] = []
        self.rng = random.Random(c.seed)
        self.served: dict[str, Adapter] = {}
        self.best: tuple[float, int] | None = None  # (held-out accuracy, step)
        self.evals: list[tuple[int, float]] = []

    # -- serving -----------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self.out is not None:
            return self.out
        if self._scratch is None:
            import tempfile

            self._scratch = Path(tempfile.mkdtemp(prefix="agentgraph-roles-"))
        return self._scratch

    def save_adapters(self, folder: Path) -> dict[str, Path]:
        """Write every trainable role's adapter under ``folder/ROLE`` (atomically, via a temp folder)."""
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp, selected_adapters=list(self.config.train_roles))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)
        return {r: folder / r for r in self.config.train_roles}

    async def publish(self) -> float:
        """Save this step's adapters and make the engine serve them (hot reload); seconds taken."""
        if not self.lora:
            return 0.0
        start = time.perf_counter()
        versions = self.root / "adapters"
        paths = self.save_adapters(versions / f"step-{self.step}")
        self.served = {r: Adapter(name=f"{r}@{self.step}", path=str(p)) for r, p in paths.items()}
        # one token per role loads the new weights now, so the reload cost is measured here and not
        # hidden inside the next rollout
        warm = Sampling(temperature=0.0, max_tokens=1)
        msg = (ChatMessage(role="user", content="1"),)
        await asyncio.gather(
            *(
                self.backend.generate(GenerationRequest(messages=msg, sampling=warm, adapter=a))
                for a in self.served.values()
            )
        )
        old = sorted(
            (p for p in versions.glob("step-*") if p.is_dir() and p.name != f"step-{self.step}"),
            key=lambda p: int(p.name.split("-")[1]) if p.name.split("-")[1].isdigit() else -1,
        )
        for p in old[: max(0, len(old) - (self.config.keep_versions - 1))]:
            shutil.rmtree(p, ignore_errors=True)
        return time.perf_counter() - start

    def rollout_team(self, *, temperature: float, logprobs: bool, team: Team | None = None) -> Team:
        t = copy.copy(team or self.team)
        t.adapters = {**t.adapters, **self.served}
        t.sampling = SamplingOverrides(
            temperature=temperature,
            top_p=1.0,
            max_tokens=self.config.max_completion_length,
            logprobs=logprobs,
        )
        return t

    # -- rollouts and credit -------------------------------------------------------------------------------
    def draw(self) -> list[Problem]:
        return [
            self.problems[self.rng.randrange(len(self.problems))]
            for _ in range(self.config.problems_per_step)
        ]

    async def rollout(self, batch: Sequence[Problem]) -> list[SessionResult]:
        c = self.config
        team = self.rollout_team(temperature=c.temperature, logprobs=True)
        questions = [p.question for p in batch for _ in range(c.group_size)]
        golds = [p.answer for p in batch for _ in range(c.group_size)]
        ids = [f"step{self.step}-p{i}-g{j}" for i in range(len(batch)) for j in range(c.group_size)]
        return await team.solve_many(questions, self.backend, golds=golds, session_ids=ids)

    def samples(
        self, results: Sequence[SessionResult], problem_of: Sequence[int]
    ) -> tuple[list[Sample], list[float], int, int]:
        """Trainable turns with advantages; also every turn reward and the groups kept / dropped.

        ``problem_of[k]`` is the index of the problem session ``k`` solved: sessions of the same
        problem form the groups, keyed (problem, role, round).
        """
        groups: dict[tuple[int, str, int], list[tuple[str, float]]] = defaultdict(list)
        turns = {}
        rewards_all: list[float] = []
        for k, r in enumerate(results):
            rewards = turn_rewards(r, self.config)
            for t in r.turns:
                if t.id in rewards:
                    groups[(problem_of[k], t.role, t.round)].append((t.id, rewards[t.id]))
                    turns[t.id] = t
                    rewards_all.append(rewards[t.id])
        adv, kept, dropped = group_advantages(groups, self.config)
        out = []
        for tid, a in adv.items():
            t = turns[tid]
            if not t.completion_token_ids:
                continue
            if max(t.prompt_token_ids + t.completion_token_ids) >= self.vocab:
                raise ConfigError(
                    "backend",
                    "rollout token ids are not the policy model's",
                    "roll out on VLLM or give Scripted(tokenizer=...) the model's tokenizer",
                )
            lp = (
                t.logprobs
                if t.logprobs is not None and len(t.logprobs) == len(t.completion_token_ids)
                else None
            )
            out.append(Sample(t.role, list(t.prompt_token_ids), list(t.completion_token_ids), lp, a))
        return out, rewards_all, kept, dropped

    # -- the update ------------------------------------------------------------------------------------------
    def _logps(self, batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
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

    def update(self, samples: Sequence[Sample]) -> tuple[float, float | None, float, dict[str, float]]:
        """One optimizer step over ``samples``; returns (loss, kl, clip ratio, seconds by phase)."""
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
                logps, mask = self._logps(mb)
                old = logps.detach().clone()
                for i, s in enumerate(mb):
                    if s.old_logps is not None:
                        old[i, : len(s.old_logps)] = torch.tensor(s.old_logps)
                ref = None
                if c.beta != 0.0 or (c.kl_every and self.step % c.kl_every == 0):
                    with torch.no_grad(), self.model.disable_adapter():
                        ref = self._logps(mb)[0]
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

    async def train_step(self) -> RoleStepLog:
        """Draw problems, roll out ``group_size`` sessions of each, update, publish the new adapters."""
        if not self.served:
            await self.publish()
        t0 = time.perf_counter()
        batch = self.draw()
        results = await self.rollout(batch)
        problem_of = [i for i in range(len(batch)) for _ in range(self.config.group_size)]
        return await self.train_on(results, problem_of, rollout_s=time.perf_counter() - t0)

    async def train_on(
        self, results: Sequence[SessionResult], problem_of: Sequence[int], *, rollout_s: float = 0.0
    ) -> RoleStepLog:
        """One update from given rollouts (the joint trainer shares its graph rollouts this way)."""
        c = self.config
        samples, rewards, kept, dropped = self.samples(results, problem_of)
        loss, kl, clip, secs = (0.0, None, 0.0, {"logprob": 0.0, "backward": 0.0})
        if samples:
            loss, kl, clip, secs = self.update(samples)
        self.step += 1
        t_reload = await self.publish()
        own = [
            r.gold is not None and is_correct(t.answer, r.gold)
            for r in results
            for t in r.turns
            if t.kind == "agent" and t.role in c.train_roles
        ]
        return RoleStepLog(
            step=self.step,
            reward=float(np.mean(rewards)) if rewards else 0.0,
            team_accuracy=float(np.mean([bool(r.correct) for r in results])),
            turn_accuracy=float(np.mean(own)) if own else 0.0,
            tokens=float(np.mean([r.usage.completion_tokens for r in results])),
            loss=loss,
            kl=kl,
            clip_ratio=clip,
            turns=len(samples),
            groups_kept=kept,
            groups_dropped=dropped,
            seconds={"rollout": rollout_s, **secs, "reload": t_reload},
        )

    # -- evaluation ------------------------------------------------------------------------------------------
    async def evaluate(self, problems: Sequence[Problem] | None = None) -> float:
        """Team accuracy on ``problems`` (default: the held-out set) with the served adapters."""
        ps = list(self.heldout if problems is None else problems)
        if not ps:
            return float("nan")
        if not self.served:
            await self.publish()
        team = self.rollout_team(temperature=self.config.eval_temperature, logprobs=False)
        results = await team.solve_many(
            [p.question for p in ps],
            self.backend,
            golds=[p.answer for p in ps],
            session_ids=[f"eval{self.step}-{i}" for i in range(len(ps))],
        )
        return float(np.mean([bool(r.correct) for r in results]))

    async def _eval_point(self) -> float:
        acc = await self.evaluate()
        self.evals.append((self.step, acc))
        if self.config.keep_best and (self.best is None or acc > self.best[0]):
            self.best = (acc, self.step)
            if self.out is not None:
                self.save_adapters(self.out / "best")
        return acc

    async def train(self, *, resume: bool = False, progress: bool = False) -> list[RoleStepLog]:
        c = self.config
        if resume:
            self.load_checkpoint()
        if not self.served:
            await self.publish()
        if self.heldout and not self.evals:
            await self._eval_point()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc="role GRPO", unit="step")
        started = time.perf_counter()
        try:
            while self.step < c.steps:
                entry = await self.train_step()
                out_of_time = (
                    c.time_limit_min is not None and time.perf_counter() - started > 60 * c.time_limit_min
                )
                last = self.step == c.steps or out_of_time
                if self.heldout and ((c.eval_every and self.step % c.eval_every == 0) or last):
                    entry.heldout_accuracy = await self._eval_point()
                self.log.append(entry)
                if self.out is not None:
                    self._append_log(entry)
                    if self.step % c.checkpoint_every == 0 or last:
                        self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(reward=f"{entry.reward:.2f}", heldout=entry.heldout_accuracy)
                if out_of_time:
                    break
        finally:
            if bar is not None:
                bar.close()
        if self.out is not None:
            self.export()
            self.plot()
        return self.log

    # -- persistence -----------------------------------------------------------------------------------------
    def export(self) -> Path:
        """Final adapters (``final/``) and ``adapters.json`` pointing at the best (or final) ones."""
        assert self.out is not None
        self.save_adapters(self.out / "final")
        use = "best" if self.best is not None and (self.out / "best").is_dir() else "final"
        index = {
            "base_model": self.model_path,
            "rank": self.config.lora_r,
            "roles": {r: f"{use}/{r}" for r in self.config.train_roles},
            "best": {"heldout_accuracy": self.best[0], "step": self.best[1]} if self.best else None,
        }
        path = self.out / "adapters.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    def _append_log(self, entry: RoleStepLog) -> None:
        assert self.out is not None
        steplog.append(self.out / "log.jsonl", entry)

    def save_checkpoint(self) -> Path:
        assert self.out is not None
        folder = self.out / "checkpoint"
        tmp = self.out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp / "adapters", selected_adapters=list(self.config.train_roles))
        torch.save(
            {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.getstate(),
                "torch_rng": torch.get_rng_state(),
                "best": self.best,
                "evals": self.evals,
                "config": self.config.model_dump(),
            },
            tmp / "trainer.pt",
        )
        old = self.out / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.replace(old)
        tmp.replace(folder)  # the swap: a crash leaves either the old or the new checkpoint whole
        shutil.rmtree(old, ignore_errors=True)
        return folder

    def load_checkpoint(self) -> bool:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if self.out is None:
            return False
        folder = self.out / "checkpoint"
        if not folder.is_dir() and (self.out / "checkpoint.old").is_dir():
            folder = self.out / "checkpoint.old"  # killed between the two renames
        if not (folder / "trainer.pt").exists():
            return False
        st = torch.load(folder / "trainer.pt", weights_only=False)
        if tuple(st["config"]["train_roles"]) != self.config.train_roles:
            raise ConfigError("resume", "the checkpoint trained other roles", "use the same --train-roles")
        for r in self.config.train_roles:
            weights = load_file(str(folder / "adapters" / r / "adapter_model.safetensors"))
            set_peft_model_state_dict(self.model, weights, adapter_name=r)
        self.optimizer.load_state_dict(st["optimizer"])
        self.rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.step = int(st["step"])
        b = st["best"]
        self.best = (float(b[0]), int(b[1])) if b else None
        self.evals = [(int(s), float(a)) for s, a in st["evals"]]
        self.served = {}
        self.log = steplog.trim(self.out / "log.jsonl", RoleStepLog, self.step)
        return True

    def plot(self) -> None:
        assert self.out is not None
        from agentgraph.plotting import pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
        steps = [x.step for x in self.log]
        axes[0].plot(steps, [x.reward for x in self.log], marker=".")
        axes[0].set_title("training reward")
        if self.evals:
            axes[1].plot([s for s, _ in self.evals], [a for _, a in self.evals], marker="o")
            axes[1].axhline(self.evals[0][1], color="grey", ls=":", lw=1)
        axes[1].set_title("held-out team accuracy")
        axes[2].plot(steps, [x.tokens for x in self.log], marker=".")
        axes[2].set_title("completion tokens / session")
        axes[3].plot(steps, [x.kl if x.kl is not None else math.nan for x in self.log], marker=".")
        axes[3].set_title("KL to base (k3)")
        for a in axes:
            a.set_xlabel("step")
        fig.savefig(self.out / "learning_curve.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
