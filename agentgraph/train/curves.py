"""The learning-curve figure of a role-training run (``OUT/learning_curve.png``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class _Step(Protocol):
    step: int
    reward: float
    tokens: float
    kl: float | None
    rolled_back: bool


def role_curves(log: Sequence[_Step], evals: Sequence[tuple[int, float]], path: Path) -> None:
    """Training reward, held-out accuracy (rollbacks marked), tokens per session and KL, by step."""
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    steps = [x.step for x in log]
    axes[0].plot(steps, [x.reward for x in log], marker=".")
    axes[0].set_title("training reward")
    if evals:
        axes[1].plot([s for s, _ in evals], [a for _, a in evals], marker="o")
        axes[1].axhline(evals[0][1], color="grey", ls=":", lw=1)
        for x in log:
            if x.rolled_back:
                axes[1].axvline(x.step, color="red", ls="--", lw=0.8)
    axes[1].set_title("held-out team accuracy (red: rollback)")
    axes[2].plot(steps, [x.tokens for x in log], marker=".")
    axes[2].set_title("completion tokens / session")
    axes[3].plot(steps, [x.kl if x.kl is not None else math.nan for x in log], marker=".")
    axes[3].set_title("KL to base (k3)")
    for a in axes:
        a.set_xlabel("step")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
