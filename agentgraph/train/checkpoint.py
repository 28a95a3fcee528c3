"""Role-GRPO checkpoints: each trained role's adapter and the trainer's state, swapped in whole.

``OUT/checkpoint/adapters/<role>/`` (PEFT format) and ``OUT/checkpoint/trainer.pt`` (step, optimizer,
RNG states, best, evaluations, guard, config) are written to ``checkpoint.tmp`` and replace the old
folder atomically (:func:`agentgraph.core.atomic.replace_dir_atomic`), so a kill at any moment leaves
the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agentgraph.core.atomic import find_dir, replace_dir_atomic
from agentgraph.core.errors import ConfigError


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
    out: Path, roles: Sequence[str]
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The adapters' weights by role and the saved state, or None when ``out`` has no checkpoint.

    Raises :class:`ConfigError` when the checkpoint trained other roles than ``roles``.
    """
    from safetensors.torch import load_file

    folder = find_dir(out / "checkpoint")
    if not (folder / "trainer.pt").exists():
        return None
    state: dict[str, Any] = torch.load(folder / "trainer.pt", weights_only=False, map_location="cpu")
    if tuple(state["config"]["train_roles"]) != tuple(roles):
        raise ConfigError("resume", "the checkpoint trained other roles", "use the same --train-roles")
    weights = {r: load_file(str(folder / "adapters" / r / "adapter_model.safetensors")) for r in roles}
    return weights, state
