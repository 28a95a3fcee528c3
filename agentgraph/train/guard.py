"""What keeps a long role-GRPO run from collapsing: rollback to the best adapters.

GRPO on a small model can fall off a cliff: a few updates push a role's answers out of format and
the reward signal disappears with them (TRL's own run on the arithmetic task went to 0% after 80
steps). Keeping the best adapters on disk (``keep_best``) saves the *result* but not the *run*: the
policy that keeps training is the collapsed one. :class:`Rollback` saves the run. At each held-out
evaluation it remembers the adapters if they are the best so far; when held-out accuracy falls more
than ``rollback_drop`` below that best, it puts the best adapters back, clears the optimizer's
moments (they point the way the run just fell) and multiplies the learning rate by
``rollback_lr_factor`` — a reference reset with a learning-rate cut, triggered by evidence rather
than by a schedule. Why this and not a KL penalty to the base is measured in docs/benchmarks.md
("Stability over a long run").

The weights are kept in memory (a LoRA adapter of the 135M model is ~20 MB), on every process, so
with several processes each restores its own copy from the same broadcast decision; they go into
the trainer's checkpoint, so a resumed run guards exactly as the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Rollback:
    drop: float
    lr_factor: float
    best: float | None = None
    best_step: int = 0
    state: dict[str, torch.Tensor] | None = None
    rollbacks: list[int] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_step": self.best_step,
            "state": self.state,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.best_step = d["best"], int(d["best_step"])
        self.state, self.rollbacks = d["state"], list(d["rollbacks"])

    def observe(self, accuracy: float, step: int, model: Any, optimizer: torch.optim.Optimizer) -> bool:
        """Record a held-out accuracy; ``True`` when the adapters were rolled back to the best."""
        if self.best is None or accuracy > self.best:
            self.best, self.best_step = accuracy, step
            # PEFT freezes the adapters of the roles not active at the moment: keep every LoRA weight
            self.state = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad or "lora_" in n
            }
            return False
        if self.state is None or accuracy >= self.best - self.drop:
            return False
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self.state:
                    p.copy_(self.state[n])
        optimizer.state.clear()
        for g in optimizer.param_groups:
            g["lr"] *= self.lr_factor
        self.rollbacks.append(step)
        return True
