"""The training commands: ``train graph | roles | joint`` — a trainer config from the options, the
trainer's own ``train``, and a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from agentgraph.cli.options import Solve
from agentgraph.cli.solve import need_dataset
from agentgraph.cli.train_options import GRAPH_FIELDS, ROLE_FIELDS, Fields
from agentgraph.core.errors import ConfigError, from_validation
from agentgraph.eval.datasets import load_dataset
from agentgraph.eval.evaluation import run_dir
from agentgraph.graph.specs import from_spec


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


def processes() -> tuple[int, int]:
    """(this process's index, how many) under ``accelerate launch``; (0, 1) without it."""
    import torch
    from accelerate import PartialState

    # without CUDA the processes talk gloo (accelerate calls that MULTI_CPU; it needs cpu=True)
    state = PartialState(cpu=not torch.cuda.is_available())
    return int(state.process_index), int(state.num_processes)


def one_process(command: str) -> None:
    if processes()[1] > 1:
        raise ConfigError(
            "num_processes",
            f"`train {command}` runs in one process",
            "launch `train roles` with accelerate, or run this one without it",
        )


def colocate(o: Any, config: Any) -> None:
    """On CUDA with the in-process engine and no ``--gpu-memory-utilization``: the engine gets what the
    trainer leaves (:mod:`agentgraph.train.memory`)."""
    import torch

    if o.backend != "vllm" or o.gpu_memory_utilization is not None or not torch.cuda.is_available():
        return
    from agentgraph.core.models import resolve
    from agentgraph.train.memory import GIB, colocated_utilization, trainer_bytes

    seq = o.max_model_len or o.model_preset().max_model_len
    need = trainer_bytes(resolve(o.model), config, seq, bf16=config.dtype != "float32")
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    o.gpu_memory_utilization = colocated_utilization(need, total)
    print(
        f"colocated: trainer ~{need / GIB:.1f} GiB of {total / GIB:.1f} GiB, "
        f"engine --gpu-memory-utilization {o.gpu_memory_utilization}",
        file=sys.stderr,
    )


def need_base(o: Any) -> str:
    if not o.base:
        raise ConfigError("base", "missing", "pass --base, e.g. --base full:6")
    return str(o.base)


def gold_needed(o: Any) -> Literal["required", "optional"]:
    """Training problems need gold answers only when the reward is gold."""
    return "required" if o.reward == "gold" else "optional"


def role_config(o: Any) -> Any:
    from agentgraph.train import RoleGRPOConfig

    if not o.train_roles:
        raise ConfigError("train_roles", "missing", "pass --train-roles, e.g. --train-roles solver,critic")
    roles = tuple(r.strip() for r in o.train_roles.split(","))
    if "" in roles:
        raise ConfigError("train_roles", f"{o.train_roles!r} has an empty item", "e.g. adder,checker")
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

    one_process("graph")
    base_spec = need_base(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit, gold=gold_needed(o))
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
            make_team=lambda t: o.team(t, o.adapters, o.model_preset(), o.team_models()),
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
        "selection": [{"edges": k, "reward": r} for k, r in trainer.selection],
        "pruned": str(out / "pruned.json"),
        "out": str(out),
    }


async def cmd_train_roles(o: Any) -> dict[str, Any]:
    from agentgraph.core.models import resolve
    from agentgraph.train import role_trainer
    from agentgraph.train.elsewhere import Elsewhere

    config = role_config(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit, gold=gold_needed(o))
    heldout = load_dataset(o.heldout) if o.heldout else []
    team = o.make_team()
    rank, world = processes()
    if world > 1 and not o.out:
        raise ConfigError("out", f"{world} processes need one run folder", "pass --out")
    out = fresh_out(o, "train-roles", "checkpoint")
    colocate(o, config)
    # under accelerate launch only the main process generates; the others train on its rollouts
    backend = (
        o.make_backend(lora_rank=config.lora_r, train=True, out=out)
        if rank == 0
        else Elsewhere(resolve(o.model), config.lora_r)
    )
    async with backend:
        trainer = role_trainer(team, problems, backend, config, heldout=heldout, model=o.model, out=out)
        await trainer.train(resume=o.resume, progress=rank == 0)
    if rank == 0:
        print(f"adapters: {out / 'adapters.json'}  (serve them with --adapters {out})")
    return role_summary(trainer, out) | {"process": rank, "processes": world}


async def cmd_train_joint(o: Any) -> dict[str, Any]:
    from agentgraph.train import GraphGRPOConfig, JointConfig, JointTrainer

    one_process("joint")
    base_spec = need_base(o)
    roles_config = role_config(o)
    problems = load_dataset(need_dataset(o.dataset), limit=o.limit, gold=gold_needed(o))
    heldout = load_dataset(o.heldout) if o.heldout else []
    base = from_spec(base_spec, role=o.role)
    o.make_team(base_spec)
    out = fresh_out(o, "train-joint", "roles/checkpoint")
    graph_fields = {
        k: GRAPH_FIELDS.get(k)
        for k in ("group", "problems_per_step", "token_cost", "prune_threshold", "report_to", "reward")
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
            make_team=lambda t: o.team(t, o.adapters, o.model_preset(), o.team_models()),
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
