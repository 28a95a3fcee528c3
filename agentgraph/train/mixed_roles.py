"""Role GRPO on a team of several base models: one LoRA policy per base, trained from the same rollouts.

A :class:`RoleGRPOTrainer` trains the roles of one base model (one LoRA policy). On a team whose
trained roles run on several models (:meth:`agentgraph.Team.model_of`), :func:`role_trainer` builds a
:class:`MixedRoleGRPOTrainer`: the trainer of the first base leads (it draws the problems, rolls out,
evaluates, logs to ``out/``), and one trainer per further base follows (its policy, optimizer,
checkpoints and adapters under ``out/bases/<model>/``). Every step:

- the rollouts are one batch of team sessions through the backend (a
  :class:`~agentgraph.backends.Router`: each model's turns go to its engine), every base's current
  adapters served, so each policy learns beside the others' current versions;
- each trainer scores the turns of its own roles (advantages within its groups), updates its policy
  and publishes its adapters to the engines of its base;
- held-out evaluation runs the whole trained team; the guard rolls every policy back together
  (they are judged by one team accuracy); checkpoints and ``resume`` cover every base.

All policies train on the accelerator's device (one per base on its own device is not built yet:
the LoRA policy takes its device from accelerate). The leader's step record counts every base's
turns; each follower also writes its own ``log.jsonl``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from agentgraph.backends.base import Adapter, Backend
from agentgraph.core.errors import ConfigError
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem
from agentgraph.team.team import Team
from agentgraph.train.adapters import save_adapters
from agentgraph.train.checkpoint import RoleStepLog
from agentgraph.train.config import RoleGRPOConfig
from agentgraph.train.roles import RoleGRPOTrainer


def bases_of(team: Team, roles: Sequence[str]) -> dict[str | None, list[str]]:
    """Model → the trained roles whose agents run on it (in ``roles`` order)."""
    out: dict[str | None, list[str]] = {}
    for r in roles:
        models = {team.model_of(a, team.role(a)) for a in team.agents if team.role(a).name == r}
        if len(models) > 1:
            raise ConfigError(
                "train_roles",
                f"the agents of role {r!r} run on {len(models)} models",
                "give a trained role one model (role_models), or train per agent role",
            )
        out.setdefault(next(iter(models), None), []).append(r)
    return out


def _slug(model: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model).name if model else "default")


class MixedRoleGRPOTrainer(RoleGRPOTrainer):
    """Role GRPO over several base models (see the module docstring)."""

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
        c = config or RoleGRPOConfig()
        groups = list(bases_of(team, c.train_roles).items())
        if len(groups) < 2:
            raise ConfigError("train_roles", "they run on one model", "use RoleGRPOTrainer")
        root = Path(out) if out is not None else None
        lead = c.model_copy(update={"train_roles": tuple(groups[0][1])})
        # ``model`` (the policy's weights) is the default model's: the lead's when it runs on it
        lead_model = model if groups[0][0] is None else None
        super().__init__(team, problems, backend, lead, heldout=heldout, model=lead_model, out=root)
        self.followers: list[RoleGRPOTrainer] = []
        for base, roles in groups[1:]:
            follower = RoleGRPOTrainer(
                team,
                problems,
                backend,
                c.model_copy(update={"train_roles": tuple(roles)}),
                out=root / "bases" / _slug(base) if root is not None else None,
            )
            self.followers.append(follower)
        self._published: dict[int, int] = {}  # follower → the step whose adapters it serves
        self.all_roles = tuple(c.train_roles)

    @property
    def served(self) -> dict[str, Adapter]:
        merged = dict(super().served)
        for f in getattr(self, "followers", []):
            merged.update(f.served)
        return merged

    async def publish(self) -> float:
        seconds = await super().publish()
        for f in getattr(self, "followers", []):
            if self._published.get(id(f)) != f.step or not f.served:
                seconds += await f.publish()
                self._published[id(f)] = f.step
        return seconds

    async def train_on(
        self, results: Sequence[SessionResult], problem_of: Sequence[int], *, rollout_s: float = 0.0
    ) -> RoleStepLog:
        own = []
        for f in self.followers:  # each publishes its own new adapters
            own.append(await f.train_on(results, problem_of, rollout_s=rollout_s))
            self._published[id(f)] = f.step
        record = await super().train_on(results, problem_of, rollout_s=rollout_s)
        for f, r in zip(self.followers, own, strict=True):
            f.record(r)
            record.turns += r.turns
            record.groups_kept += r.groups_kept
            record.groups_dropped += r.groups_dropped
            for k, v in r.seconds.items():
                record.seconds[k] = record.seconds.get(k, 0.0) + (0.0 if k == "rollout" else v)
        return record

    async def evaluate_heldout(self) -> float:
        acc = await super().evaluate_heldout()
        if self.best is not None and self.best[1] == self.step:  # a new best: every base keeps it
            for f in self.followers:
                f.best = self.best
                if f.out is not None:
                    save_adapters(f.policy.model, f.out / "best", f.config.adapters)
        return acc

    async def guard_step(self, accuracy: float) -> bool:
        rolled = await super().guard_step(accuracy)
        for f in self.followers:
            if f.guard is not None and f.guard.observe(accuracy, f.step, f.policy.model, f.policy.optimizer):
                await f.publish()
                self._published[id(f)] = f.step
        return rolled

    async def start(self) -> None:
        await super().start()
        if self.evals and self.step == 0:  # the starting point is every base's too
            for f in self.followers:
                if f.guard is not None:
                    f.guard.observe(self.evals[-1][1], f.step, f.policy.model, f.policy.optimizer)

    def save_checkpoint(self) -> Path | None:
        for f in self.followers:
            f.save_checkpoint()
        return super().save_checkpoint()

    def load_checkpoint(self) -> bool:
        found = super().load_checkpoint()
        for f in self.followers:
            if f.load_checkpoint() != found or f.step != self.step:
                raise ConfigError(
                    "resume",
                    f"the checkpoints of the bases disagree (lead at step {self.step}, {f.base_model} at "
                    f"{f.step})",
                    "resume from a run that stopped cleanly, or start afresh",
                )
        return found

    def finish(self) -> None:
        for f in self.followers:
            f.finish()
        super().finish()


def role_trainer(
    team: Team,
    problems: Sequence[Problem],
    backend: Backend,
    config: RoleGRPOConfig | None = None,
    *,
    heldout: Sequence[Problem] = (),
    model: str | None = None,
    out: str | Path | None = None,
) -> RoleGRPOTrainer:
    """A :class:`RoleGRPOTrainer`, or a :class:`MixedRoleGRPOTrainer` when the trained roles run on
    several models."""
    c = config or RoleGRPOConfig()
    if len(bases_of(team, c.train_roles)) > 1:
        return MixedRoleGRPOTrainer(team, problems, backend, c, heldout=heldout, model=model, out=out)
    return RoleGRPOTrainer(team, problems, backend, c, heldout=heldout, model=model, out=out)


__all__ = ["MixedRoleGRPOTrainer", "bases_of", "role_trainer"]
