"""Role-GRPO persistence: the step record, checkpoints (each trained role's adapter and the trainer's
state, swapped in whole), the final export and the plot (:class:`RoleCheckpoints`, the persistence
half of :class:`~agentgraph.train.roles.RoleGRPOTrainer`).

``OUT/checkpoint/adapters/<role>/`` (PEFT format) and ``OUT/checkpoint/trainer.pt`` (step, optimizer,
RNG states, best, evaluations, guard, config) are written to ``checkpoint.tmp`` and replace the old
folder atomically (:func:`agentgraph.core.atomic.replace_dir_atomic`), so a kill at any moment leaves
the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ConfigDict, Field

from agentgraph.core.atomic import find_dir, replace_dir_atomic
from agentgraph.core.errors import ConfigError
from agentgraph.train.adapters import Publisher, export_index, save_adapters
from agentgraph.train.config import RoleGRPOConfig
from agentgraph.train.curves import role_curves
from agentgraph.train.guard import Rollback
from agentgraph.train.loop import StepRecord, trim_log
from agentgraph.train.policies.lora import LoRAPolicy
from agentgraph.train.trackers import Tracker


def save_role_checkpoint(out: Path, model: Any, roles: Sequence[str], state: dict[str, Any]) -> Path:
    """Write the adapters of ``roles`` from the PEFT ``model`` and ``state`` (whose ``config`` names the
    trained roles, checked on load); the checkpoint folder."""
    tmp = out / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapters", selected_adapters=list(roles))
    torch.save(state, tmp / "trainer.pt")
    replace_dir_atomic(tmp, out / "checkpoint")
    return out / "checkpoint"


def load_role_checkpoint(
    out: Path, config: RoleGRPOConfig
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The adapters' weights by adapter name and the saved state, or None when ``out`` has no
    checkpoint.

    Raises :class:`ConfigError` when the checkpoint trained other roles, or other adapters, than
    ``config``.
    """
    from safetensors.torch import load_file

    folder = find_dir(out / "checkpoint")
    if not (folder / "trainer.pt").exists():
        return None
    state: dict[str, Any] = torch.load(folder / "trainer.pt", weights_only=False, map_location="cpu")
    if tuple(state["config"]["train_roles"]) != tuple(config.train_roles):
        raise ConfigError("resume", "the checkpoint trained other roles", "use the same --train-roles")
    if bool(state["config"].get("shared_policy", False)) != config.shared_policy:
        raise ConfigError(
            "resume", "the checkpoint trained its roles with another shared_policy", "use the same setting"
        )
    weights = {
        a: load_file(str(folder / "adapters" / a / "adapter_model.safetensors")) for a in config.adapters
    }
    return weights, state


class RoleStepLog(StepRecord):
    model_config = ConfigDict(extra="forbid")

    reward: float
    team_accuracy: float | None = Field(description="sessions right against gold (None: no gold)")
    turn_accuracy: float | None = Field(description="trained turns right against gold (None: no gold)")
    label_accuracy: float | None = Field(
        None, description="consensus labels equal to gold, over labelled problems with gold"
    )
    labelled: float | None = Field(None, description="share of the step's problems that got a label")
    agreement: float | None = Field(None, description="mean share of votes behind a consensus label")
    tokens: float = Field(description="completion tokens per session")
    loss: float
    kl: float | None
    clip_ratio: float
    turns: int
    groups_kept: int
    groups_dropped: int
    is_ratio: float | None = Field(None, description="mean π_trainer / π_engine over the sampled tokens")
    is_truncated: float = Field(0.0, description="share of sampled tokens whose ratio hit the cap")
    grad_norm: float = Field(0.0, description="norm of the adapters' gradient before clipping")
    heldout_accuracy: float | None = None
    rolled_back: bool = Field(False, description="the guard restored the best adapters after this step")
    seconds: dict[str, float] = Field(description="rollout / logprob / backward / reload")


class RoleCheckpoints:
    """Checkpoint, resume, export and plot for a role trainer (a mixin over its attributes)."""

    config: RoleGRPOConfig
    out: Path | None
    main: bool
    step: int
    log: list[RoleStepLog]
    evals: list[tuple[int, float]]
    best: tuple[float, int] | None
    rng: random.Random
    policy: LoRAPolicy
    guard: Rollback | None
    publisher: Publisher | None
    tracker: Tracker
    accelerator: Any
    model_path: str

    def finish(self) -> None:
        """With an ``out`` folder: the final adapters, ``adapters.json`` and the plots (main process)."""
        self.tracker.close()
        if self.out is not None and self.main:
            self.export()
            self.plot()
        self.accelerator.wait_for_everyone()

    # -- persistence -----------------------------------------------------------------------------------------
    def export(self) -> Path:
        """Final adapters (``final/``) and ``adapters.json`` pointing at the best (or final) ones."""
        assert self.out is not None
        c = self.config
        save_adapters(self.policy.model, self.out / "final", c.adapters)
        use = "best" if self.best is not None and (self.out / "best").is_dir() else "final"
        roles = {r: c.adapter_of(r) for r in c.train_roles}
        return export_index(
            self.out, use=use, base_model=self.model_path, rank=c.lora_r, roles=roles, best=self.best
        )

    def save_checkpoint(self) -> Path | None:
        if self.out is None or not self.main:
            return None
        state = {
            "step": self.step,
            "optimizer": self.policy.optimizer.state_dict(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "best": self.best,
            "evals": self.evals,
            "guard": self.guard.state_dict() if self.guard is not None else None,
            "config": self.config.model_dump(),
        }
        return save_role_checkpoint(self.out, self.policy.model, self.config.adapters, state)

    def load_checkpoint(self) -> bool:
        found = load_role_checkpoint(self.out, self.config) if self.out is not None else None
        if found is None:
            return False
        weights, st = found
        for adapter, w in weights.items():
            self.policy.load_weights(adapter, w)
        self.policy.optimizer.load_state_dict(st["optimizer"])
        self.rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.step = int(st["step"])
        b = st["best"]
        self.best = (float(b[0]), int(b[1])) if b else None
        self.evals = [(int(s), float(a)) for s, a in st["evals"]]
        if self.guard is not None and st.get("guard"):
            self.guard.load_state_dict(st["guard"])
        if self.publisher is not None:
            self.publisher.served = {}
        if self.main and self.out is not None:
            self.log = trim_log(self.out / "log.jsonl", RoleStepLog, self.step)
        self.accelerator.wait_for_everyone()  # no process trains on before every one has loaded
        return True

    def plot(self) -> None:
        assert self.out is not None
        role_curves(self.log, self.evals, self.out / "learning_curve.png")
