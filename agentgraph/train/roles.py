"""Role GRPO: one LoRA adapter per trainable role, trained from real team sessions.

TRL's ``GRPOTrainer`` trains one policy with one advantage per completion. A team has several roles
and several turns per session, so credit is given per *turn*:

- **rollouts** are real sessions of the team (any topology) — ``group_size`` sessions per problem, all
  in flight together through the shared scheduler — with each trainable role served its current
  adapter per request; every turn keeps prompt ids, completion ids and the engine's sampling log-probs;
- **reward** of a turn = ``α · team correct + (1 − α) · own correct + format_reward · parseable``
  against gold or the rollouts' consensus, or a function of yours (:mod:`agentgraph.train.rewards`);
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
  (``best/``), and the guard (:mod:`agentgraph.train.guard`, on by default) rolls the run back to
  them when held-out accuracy falls, because GRPO on a tiny model learns fast and can collapse later;
- **checkpoints** (adapters, optimizer, step, RNG, best; :mod:`agentgraph.train.checkpoint`) are
  written atomically; ``resume=True`` continues from the last one and trims the log to it.

Rollouts must carry the policy model's token ids: the vLLM backend does, and the scripted backend does
when given the model's tokenizer (``Scripted(tokenizer=...)``). Rollouts sample with the configured
``temperature``, ``top_p`` and ``top_k``; the engine reports log-probs of that processed distribution
(``logprobs_mode="processed_logprobs"``, set by ``backends.create(..., policy_tokens=True)``) and the
trainer scores under the same processing, so their ratio (truncated importance sampling,
:mod:`agentgraph.train.policies.lora`) only corrects numerics; without them (scripted) it is on-policy.
The trained roles run on one base model (one LoRA policy); roles on several models are trained by
:class:`~agentgraph.train.mixed_roles.MixedRoleGRPOTrainer`, one of these per base.

**Several processes** (``accelerate launch -m agentgraph train roles ...``): rollouts are produced
once, by the main process, through its backend (the in-process engine or a ``vllm serve`` fleet), then
the scored turns are broadcast and dealt to the processes (turns sharing a prompt stay together);
each process computes its share's gradients with the whole batch's normalisers and the gradients are
summed, so the step equals a one-process step on the same batch. We chose this over per-process
rollouts because a team's sessions batch best when all are in flight on one engine, the groups'
advantages need every session of a problem, and held-out evaluation and publishing happen once.
Only the main process writes (log, checkpoints, adapters, trackers); every process resumes from the
same checkpoint.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agentgraph.backends.base import Adapter, Backend
from agentgraph.backends.base import served as served_model
from agentgraph.core.errors import ConfigError
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem
from agentgraph.eval.evaluation import evaluate
from agentgraph.team.team import Team
from agentgraph.train import rewards as reward_specs
from agentgraph.train.adapters import Publisher, base_model_of, save_adapters
from agentgraph.train.base import BaseTrainer
from agentgraph.train.checkpoint import (
    RoleCheckpoints,
    RoleStepLog,
)
from agentgraph.train.config import RoleGRPOConfig
from agentgraph.train.credit import group_advantages
from agentgraph.train.guard import Rollback
from agentgraph.train.loop import (
    StepRecord,
    train_loop,
)
from agentgraph.train.policies.lora import LoRAPolicy, Sample, split_for_ranks
from agentgraph.train.trackers import Tracker


class RoleGRPOTrainer(RoleCheckpoints, BaseTrainer[RoleStepLog]):
    """Trains ``config.train_roles`` of ``team`` on ``problems`` with rollouts on ``backend``.

    ``model`` is the base model's path (default: the one the backend serves, else the embedded
    model). ``heldout`` problems are evaluated greedily every ``eval_every`` steps with the current
    adapters.
    """

    log_model = RoleStepLog

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
        from agentgraph.core.models import resolve

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
        reward_specs.need_gold(problems, c.reward, "dataset")
        reward_specs.need_gold(heldout, c.reward, "heldout")
        self.reward_fn = reward_specs.load(c.reward)
        self.base_model = base_model_of(team, c.train_roles)
        base = served_model(backend, self.base_model)
        rank = base.lora_rank
        if rank is not None and c.lora_r > rank:
            raise ConfigError(
                "lora_r",
                f"{c.lora_r} exceeds the engine's max_lora_rank {rank}",
                "raise VLLM(max_lora_rank=...)",
            )
        self.team = team
        self.problems = list(problems)
        self.heldout = list(heldout)
        self.backend = backend
        self.out = Path(out) if out is not None else None
        self.root = self.out if self.out is not None else Path(tempfile.mkdtemp(prefix="agentgraph-roles-"))
        self.model_path = model or base.model_path or resolve(self.base_model)
        self.policy = LoRAPolicy(self.model_path, c)
        self.accelerator = self.policy.accelerator
        self.main = bool(self.accelerator.is_main_process)
        # without LoRA serving (scripted rollouts) every role is served the base model; only the main
        # process rolls out, so only it publishes
        self.publisher = (
            Publisher(backend, self.root, c.train_roles, c.keep_versions, self.base_model, c.adapter_of)
            if rank is not None and self.main
            else None
        )
        self.tracker = Tracker(c.report_to if self.main else "none", self.out, "roles")
        self.step = 0
        self.log: list[RoleStepLog] = []
        self.rng = random.Random(c.seed)
        self.best: tuple[float, int] | None = None  # (held-out accuracy, step)
        self.evals: list[tuple[int, float]] = []
        self.guard = Rollback(c.rollback_drop, c.rollback_lr_factor) if c.guard == "rollback" else None

    @property
    def served(self) -> dict[str, Adapter]:
        """Role → the adapter version the engine serves now (empty before the first publish)."""
        return self.publisher.served if self.publisher is not None else {}

    async def publish(self) -> float:
        """Save this step's adapters and make the engine serve them (hot reload); seconds taken."""
        if self.publisher is None:
            return 0.0
        start = time.perf_counter()
        await self.publisher.publish(self.policy.model, self.step)
        return time.perf_counter() - start

    def rollout_team(self, *, temperature: float, logprobs: bool, team: Team | None = None) -> Team:
        t = team or self.team
        c = self.config
        greedy = temperature == 0.0  # held-out evaluation: the nucleus does not matter
        # laid over the team's own sampling: its thinking budget and answer tokens are kept
        rollout = SamplingOverrides(
            temperature=temperature,
            top_p=1.0 if greedy else c.top_p,
            top_k=None if greedy else c.top_k,
            max_tokens=c.max_completion_length,
            logprobs=logprobs,
        )
        return t.replace(adapters={**t.adapters, **self.served}, sampling=rollout.over(t.sampling))

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
        return await scheduler.solve_many(team, questions, self.backend, golds=golds, session_ids=ids)

    def samples(
        self, results: Sequence[SessionResult], problem_of: Sequence[int]
    ) -> tuple[list[Sample], list[float], int, int, reward_specs.Labels]:
        """Trainable turns with advantages; also every turn reward, the groups kept / dropped and the
        step's labels.

        ``problem_of[k]`` is the index of the problem session ``k`` solved: sessions of the same
        problem form the groups, keyed (problem, role, round).
        """
        groups: dict[tuple[int, str, int], list[tuple[str, float]]] = defaultdict(list)
        turns = {}
        rewards_all: list[float] = []
        per_session, lab = reward_specs.turn_rewards_of(results, problem_of, self.config, self.reward_fn)
        for k, r in enumerate(results):
            rewards = per_session[k]
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
            if max(t.prompt_token_ids + t.completion_token_ids) >= self.policy.vocab:
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
        return out, rewards_all, kept, dropped, lab

    async def train_step(self) -> RoleStepLog:
        """Draw problems, roll out ``group_size`` sessions of each, update, publish the new adapters."""
        if self.main and not self.served:
            await self.publish()
        t0 = time.perf_counter()
        batch = self.draw()  # on every process: the problem stream stays in step with the checkpoint
        results = await self.rollout(batch) if self.main else []
        problem_of = [i for i in range(len(batch)) for _ in range(self.config.group_size)]
        return await self.train_on(results, problem_of, rollout_s=time.perf_counter() - t0)

    def rollout_record(
        self, results: Sequence[SessionResult], problem_of: Sequence[int], rollout_s: float
    ) -> tuple[list[Sample], RoleStepLog]:
        """The scored turns of a rollout batch and the step's record, its update figures still zero."""
        c = self.config
        samples, rewards, kept, dropped, lab = self.samples(results, problem_of)
        team_accuracy, turn_accuracy = reward_specs.gold_accuracy(results, c.train_roles)
        record = RoleStepLog(
            step=self.step + 1,
            reward=float(np.mean(rewards)) if rewards else 0.0,
            team_accuracy=team_accuracy,
            turn_accuracy=turn_accuracy,
            label_accuracy=lab.accuracy,
            labelled=lab.labelled,
            agreement=lab.agreement,
            tokens=float(np.mean([r.usage.completion_tokens for r in results])),
            loss=0.0,
            kl=None,
            clip_ratio=0.0,
            turns=len(samples),
            groups_kept=kept,
            groups_dropped=dropped,
            seconds={"rollout": rollout_s, "logprob": 0.0, "backward": 0.0},
        )
        return samples, record

    async def train_on(
        self, results: Sequence[SessionResult], problem_of: Sequence[int], *, rollout_s: float = 0.0
    ) -> RoleStepLog:
        """One update from given rollouts (the joint trainer shares its graph rollouts this way).

        With several processes, only the main process's ``results`` count: its scored turns and
        record are broadcast, every process updates on its share.
        """
        from accelerate.utils import broadcast_object_list

        c = self.config
        payload: list[object] = [None, None]
        if self.main:
            payload = list(self.rollout_record(results, problem_of, rollout_s))
        if self.policy.world > 1:
            t0 = time.perf_counter()
            broadcast_object_list(payload, from_process=0)
            broadcast_s = time.perf_counter() - t0
        samples, record = payload
        assert isinstance(samples, list) and isinstance(record, RoleStepLog)
        if self.policy.world > 1:
            record.seconds["broadcast"] = broadcast_s
        if samples:
            mine = split_for_ranks(samples, self.policy.world)[self.accelerator.process_index]
            stats = self.policy.update(
                mine,
                n_seq=len(samples),
                n_tok=sum(len(s.completion_ids) for s in samples),
                measure_kl=bool(c.kl_every and self.step % c.kl_every == 0),
            )
            record.loss, record.kl, record.clip_ratio = stats.loss, stats.kl, stats.clip_ratio
            record.is_ratio, record.is_truncated = stats.is_ratio, stats.is_truncated
            record.grad_norm = stats.grad_norm
            record.seconds.update(stats.seconds)
        self.step += 1
        record.seconds["reload"] = await self.publish()
        return record

    # -- evaluation ------------------------------------------------------------------------------------------
    async def evaluate(self, problems: Sequence[Problem] | None = None) -> float:
        """Team accuracy on ``problems`` (default: the held-out set) with the served adapters."""
        ps = list(self.heldout if problems is None else problems)
        if not ps:
            return float("nan")
        if self.publisher is not None and not self.served:
            await self.publish()
        team = self.rollout_team(temperature=self.config.eval_temperature, logprobs=False)
        metrics, _ = await evaluate(
            team, ps, self.backend, progress=False, session_prefix=f"eval{self.step}-"
        )
        return metrics.accuracy

    async def evaluate_heldout(self) -> float:
        """Evaluate the held-out set now; keep the point of the curve and the best adapters."""
        acc = await self.evaluate()
        self.evals.append((self.step, acc))
        if self.config.keep_best and (self.best is None or acc > self.best[0]):
            self.best = (acc, self.step)
            if self.out is not None:
                save_adapters(self.policy.model, self.out / "best", self.config.adapters)
        return acc

    async def after_step(self, entry: StepRecord, last: bool) -> None:
        assert isinstance(entry, RoleStepLog)
        c = self.config
        if not (self.heldout and ((c.eval_every and self.step % c.eval_every == 0) or last)):
            return
        acc = await self.evaluate_heldout() if self.main else float("nan")
        entry.heldout_accuracy = acc if self.main else None
        if self.guard is not None:  # at the last evaluation too: a run never ends on a collapse
            entry.rolled_back = await self.guard_step(acc)

    async def guard_step(self, accuracy: float) -> bool:
        """Show the guard the main process's held-out ``accuracy``; restore and republish on a rollback."""
        assert self.guard is not None
        if self.policy.world > 1:
            from accelerate.utils import broadcast_object_list

            box: list[object] = [accuracy]
            broadcast_object_list(box, from_process=0)
            accuracy = float(box[0])  # type: ignore[arg-type]
        rolled = self.guard.observe(accuracy, self.step, self.policy.model, self.policy.optimizer)
        if rolled and self.main:
            await self.publish()
        return rolled

    def agree(self, flag: bool) -> bool:
        """The main process's ``flag`` on every process (a time limit must stop all of them together)."""
        if self.policy.world == 1:
            return flag
        from accelerate.utils import broadcast_object_list

        box: list[object] = [flag]
        broadcast_object_list(box, from_process=0)
        return bool(box[0])

    async def start(self) -> None:
        """Serve the first adapters and measure the held-out starting point (once per run)."""
        if not self.main:
            return
        if not self.served:
            await self.publish()
        if self.heldout and not self.evals:
            acc = await self.evaluate_heldout()
            if self.guard is not None and self.policy.world == 1:
                self.guard.observe(acc, self.step, self.policy.model, self.policy.optimizer)

    async def train(self, *, resume: bool = False, progress: bool = False) -> list[RoleStepLog]:
        c = self.config
        if resume:
            self.load_checkpoint()
        await self.start()

        def postfix(e: StepRecord) -> dict[str, object]:
            assert isinstance(e, RoleStepLog)
            return {"reward": f"{e.reward:.2f}", "heldout": e.heldout_accuracy}

        await train_loop(
            self,
            steps=c.steps,
            checkpoint_every=c.checkpoint_every,
            desc="role GRPO",
            progress=progress,
            time_limit_min=c.time_limit_min,
            postfix=postfix,
        )
        self.finish()
        return self.log
