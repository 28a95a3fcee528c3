"""The training commands: ``train graph | roles | joint`` — a trainer config from the options, the
trainer's own ``train``, and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentgraph.builders import from_spec
from agentgraph.cli.options import GRAPH_FIELDS, ROLE_FIELDS, Fields, Solve
from agentgraph.cli.solve import need_dataset
from agentgraph.datasets import load_dataset
from agentgraph.errors import ConfigError, from_validation
from agentgraph.evaluation import run_dir


def config_from(o: Solve, config: type[BaseModel], fields: Fields, **extra: Any) -> Any:
    """The trainer config named by the options: each option mapped onto its config field; options
    left unset keep the config's own default."""
    data = {f: getattr(o, opt) for opt, src in fields.items() if src and src[0] is config for f in [src[1]]}
    data.update({k: v for k, v in extra.items() if v is not None})
    try:
        return config.model_validate(data)
    except ValidationError as e:
        raise from_validation(e, "", "see agentgraph train --help") from None


def fresh_out(o: Any, command: str, marker: str) -> Path:
    out = Path(o.out) if o.out else run_dir(command)
    if (out / marker).exists() and not o.resume:
        raise ConfigError(
            "out", f"{out} already holds a training run", "pass --resume or choose another --out"
        )
    return out


def need_base(o: Any) -> str:
    if not o.base:
        raise ConfigError("base", "missing", "pass --base, e.g. --base full:6")
    return str(o.base)


def role_config(o: Any) -> Any:
    from agentgraph.train import RoleGRPOConfig

    if not o.train_roles:
        raise ConfigError("train_roles", "missing", "pass --train-roles, e.g. --train-roles solver,critic")
    roles = tuple(r.strip() for r in o.train_roles.split(",") if r.strip())
    return config_from(
        o,
        RoleGRPOConfig,
        ROLE_FIELDS,
        train_roles=roles,
        max_completion_length=o.max_tokens,
        temperature=o.temperature,
        seed=o.seed,
    )


def role_summary(trainer: Any, out: Path) -> dict[str, Any]:
    log = trainer.log
    curve = [[s, a] for s, a in trainer.evals]
    return {
        "steps": trainer.step,
        "accuracy_before": curve[0][1] if curve else None,
        "accuracy_after": curve[-1][1] if curve else None,
        "best": {"accuracy": trainer.best[0], "step": trainer.best[1]} if trainer.best else None,
        "curve": curve,
        "final_reward": log[-1].reward if log else None,
        "adapters": str(out),
        "out": str(out),
    }


async def cmd_train_graph(o: Any) -> dict[str, Any]:
    from agentgraph.train import GraphGRPOConfig, GraphGRPOTrainer

    base_spec = need_base(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit)
    base = from_spec(base_spec, role=o.role)
    o.make_team(base_spec)  # checks rounds, policy, decision and roles against the base before training
    out = fresh_out(o, "train-graph", "checkpoint.pt")
    config = config_from(o, GraphGRPOConfig, GRAPH_FIELDS, seed=o.seed)
    async with o.make_backend(out=out) as backend:
        trainer = GraphGRPOTrainer(
            base,
            problems,
            backend,
            config,
            make_team=lambda t: o.team(t, o.adapters, o.model_preset()),
            out=out,
        )
        pruned = await trainer.train(resume=o.resume, progress=True)
    probs = trainer.probabilities()
    for name, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        print(f"  {p:5.3f}  {name}")
    kept = len(pruned.edges(keys=True))
    print(f"pruned topology: {out / 'pruned.json'} ({kept} of {base.number_of_edges()} edges kept)")
    last = trainer.log[-1] if trainer.log else None
    return {
        "steps": trainer.step,
        "final_reward": last.reward if last else None,
        "final_tokens": last.tokens if last else None,
        "probabilities": probs,
        "edges_kept": kept,
        "edges_total": base.number_of_edges(),
        "pruned": str(out / "pruned.json"),
        "out": str(out),
    }


async def cmd_train_roles(o: Any) -> dict[str, Any]:
    from agentgraph.train import RoleGRPOTrainer

    config = role_config(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit)
    heldout = load_dataset(o.heldout) if o.heldout else []
    team = o.make_team()
    out = fresh_out(o, "train-roles", "checkpoint")
    async with o.make_backend(lora_rank=config.lora_r, train=True, out=out) as backend:
        trainer = RoleGRPOTrainer(team, problems, backend, config, heldout=heldout, model=o.model, out=out)
        await trainer.train(resume=o.resume, progress=True)
    print(f"adapters: {out / 'adapters.json'}  (serve them with --adapters {out})")
    return role_summary(trainer, out)


async def cmd_train_joint(o: Any) -> dict[str, Any]:
    from agentgraph.train import GraphGRPOConfig, JointConfig, JointTrainer

    base_spec = need_base(o)
    roles_config = role_config(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit)
    heldout = load_dataset(o.heldout) if o.heldout else []
    base = from_spec(base_spec, role=o.role)
    o.make_team(base_spec)
    out = fresh_out(o, "train-joint", "roles/checkpoint")
    graph_fields = {
        k: GRAPH_FIELDS.get(k) for k in ("group", "problems_per_step", "token_cost", "prune_threshold")
    }
    config = JointConfig(
        steps=o.steps,
        schedule=o.schedule,
        graph=config_from(o, GraphGRPOConfig, graph_fields, seed=o.seed),
        roles=roles_config,
    )
    async with o.make_backend(lora_rank=roles_config.lora_r, train=True, out=out) as backend:
        trainer = JointTrainer(
            base,
            problems,
            backend,
            config,
            make_team=lambda t: o.team(t, o.adapters, o.model_preset()),
            heldout=heldout,
            model=o.model,
            out=out,
        )
        pruned = await trainer.train(resume=o.resume, progress=True)
    summary = role_summary(trainer.roles, out / "roles")
    summary.update(
        steps=trainer.step,
        probabilities=trainer.graph.probabilities(),
        edges_kept=len(pruned.edges(keys=True)),
        edges_total=base.number_of_edges(),
        pruned=str(out / "graph" / "pruned.json"),
        out=str(out),
    )
    return summary
