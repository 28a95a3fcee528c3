"""Role adapters on disk and in the engine: save, publish (hot reload), export, load.

- :func:`save_adapters` writes every trained role's adapter under ``folder/ROLE`` atomically;
- :class:`Publisher` saves a step's adapters as ``adapters/step-N`` and makes the backend serve them
  under new names (``solver@3``) — a new name means new weights, so no engine restart is needed —
  then keeps only the last ``keep_versions`` folders. On a ``vllm serve`` fleet
  (:class:`~agentgraph.backends.base.AdapterHost`) each version is loaded onto every server first and
  old versions are unloaded; the folder must be one the servers can read (shared storage);
- :func:`export_index` writes ``adapters.json`` (base model, rank, role → folder) and
  :func:`load_adapters` reads it back for ``--adapters``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgraph.backends.base import Adapter, AdapterHost, Backend, GenerationRequest
from agentgraph.backends.router import Router
from agentgraph.core.atomic import replace_dir_atomic, write_text_atomic
from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import ChatMessage
from agentgraph.core.sampling import Sampling
from agentgraph.team.team import Team


def save_adapters(model: Any, folder: Path, roles: Sequence[str]) -> dict[str, Path]:
    """Write the PEFT ``model``'s adapters of ``roles`` under ``folder/ROLE`` (via a temp folder)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, selected_adapters=list(roles))
    replace_dir_atomic(tmp, folder)
    return {r: folder / r for r in roles}


def base_model_of(team: Team, roles: Sequence[str]) -> str | None:
    """The one model the agents of ``roles`` run on: one LoRA policy per run trains one base."""
    bases = {team.model_of(a, team.role(a)) for a in team.agents if team.role(a).name in roles}
    if len(bases) > 1:
        raise ConfigError(
            "train_roles",
            f"the roles run on {len(bases)} models ({', '.join(sorted(map(str, bases)))})",
            "train them with MixedRoleGRPOTrainer (agentgraph.train.role_trainer): one policy per base",
        )
    return next(iter(bases), None)


class Publisher:
    """Serves each step's adapters on ``backend`` under a new name."""

    def __init__(
        self,
        backend: Backend,
        root: Path,
        roles: Sequence[str],
        keep_versions: int = 2,
        model: str | None = None,
        adapter_of: Callable[[str], str] | None = None,
    ) -> None:
        self.backend = backend
        self.model = model  # the base model the adapters are for (a mixed team's router routes them)
        self.root = root
        self.roles = list(roles)
        self.adapter_of = adapter_of or (lambda r: r)  # role → the adapter it is served
        self.keep_versions = keep_versions
        self.served: dict[str, Adapter] = {}
        self.history: list[dict[str, Adapter]] = []

    async def publish(self, model: Any, step: int) -> None:
        versions = self.root / "adapters"
        names = list(dict.fromkeys(map(self.adapter_of, self.roles)))
        paths = save_adapters(model, versions / f"step-{step}", names)
        made = {a: Adapter(name=f"{a}@{step}", path=str(p.resolve())) for a, p in paths.items()}
        self.served = {r: made[self.adapter_of(r)] for r in self.roles}
        # a mixed team's router: the adapters are loaded onto the fleet of their base model only
        target = self.backend.member_for(self.model) if isinstance(self.backend, Router) else self.backend
        host = target if isinstance(target, AdapterHost) else None
        if host is not None:
            await asyncio.gather(*(host.load_adapter(a) for a in made.values()))
        # one token per role loads the new weights now, so the reload cost is measured here and not
        # hidden inside the next rollout
        warm = Sampling(temperature=0.0, max_tokens=1)
        msg = (ChatMessage(role="user", content="1"),)
        await asyncio.gather(
            *(
                self.backend.generate(
                    GenerationRequest(messages=msg, sampling=warm, adapter=a, model=self.model)
                )
                for a in made.values()
            )
        )
        old = sorted(
            (p for p in versions.glob("step-*") if p.is_dir() and p.name != f"step-{step}"),
            key=lambda p: int(p.name.split("-")[1]) if p.name.split("-")[1].isdigit() else -1,
        )
        self.history.append(self.served)
        for gone in self.history[: max(0, len(self.history) - self.keep_versions)]:
            if host is not None:
                for a in set(gone.values()):
                    await host.unload_adapter(a)
        self.history = self.history[-self.keep_versions :]
        for p in old[: max(0, len(old) - (self.keep_versions - 1))]:
            shutil.rmtree(p, ignore_errors=True)


def export_index(
    out: Path,
    *,
    use: str,
    base_model: str,
    rank: int,
    roles: Mapping[str, str],
    best: tuple[float, int] | None,
) -> Path:
    """``out/adapters.json``: what :func:`load_adapters` (and ``--adapters``) reads; ``roles`` maps
    each role to its adapter's folder (several roles share one under ``shared_policy``)."""
    index = {
        "base_model": base_model,
        "rank": rank,
        "roles": {r: f"{use}/{a}" for r, a in roles.items()},
        "best": {"heldout_accuracy": best[0], "step": best[1]} if best else None,
    }
    return write_text_atomic(out / "adapters.json", json.dumps(index, indent=2))


def load_adapters(run: str | Path) -> tuple[dict[str, Adapter], int]:
    """The adapters a role-training run exported (``adapters.json``) and their LoRA rank."""
    root = Path(run)
    index = root / "adapters.json"
    if not index.is_file():
        raise ConfigError(
            "adapters", f"{root} has no adapters.json", "give the --out folder of `agentgraph train roles`"
        )
    data = json.loads(index.read_text(encoding="utf-8"))
    # named by folder, so roles that share an adapter are served one LoRA slot
    adapters = {
        role: Adapter(name=f"{Path(p).name}@{root.name}/{Path(p).parent.name}", path=str(root / p))
        for role, p in data["roles"].items()
    }
    for a in adapters.values():
        if not Path(a.path).is_dir():
            raise ConfigError(
                "adapters", f"adapter folder {a.path} is missing", "re-run or re-export training"
            )
    return adapters, int(data["rank"])
