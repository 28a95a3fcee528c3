"""The trainers' options: generated from the trainer configs' fields (type, default, bounds, help),
so the CLI and Python agree on every default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from agentgraph.cli.options import DataOptions, Solve
from agentgraph.train.config import GraphGRPOConfig, JointConfig, RoleGRPOConfig


def _from(config: type[BaseModel], name: str, **changes: Any) -> Any:
    """A config field as an option field: its type, default, bounds and help."""
    info: FieldInfo = config.model_fields[name]
    merged = FieldInfo.merge_field_infos(info, **changes) if changes else info
    return (info.annotation, merged)


Fields = Mapping[str, tuple[type[BaseModel], str] | None]


GRAPH = GraphGRPOConfig
ROLES = RoleGRPOConfig

# CLI name -> (config, field): the trainers' options are these config fields
GRAPH_FIELDS: Fields = {
    "base": None,
    "group": (GRAPH, "group_size"),
    "steps": (GRAPH, "steps"),
    "problems_per_step": (GRAPH, "problems_per_step"),
    "lr": (GRAPH, "learning_rate"),
    "token_cost": (GRAPH, "token_cost"),
    "reward": (GRAPH, "reward"),
    "consensus_min_share": (GRAPH, "consensus_min_share"),
    "prune_threshold": (GRAPH, "prune_threshold"),
    "select_problems": (GRAPH, "select_problems"),
    "select_se": (GRAPH, "select_se"),
    "select_holdout": (GRAPH, "select_holdout"),
    "explore": (GRAPH, "explore"),
    "credit": (GRAPH, "credit"),
    "checkpoint_every": (GRAPH, "checkpoint_every"),
    "report_to": (GRAPH, "report_to"),
}
ROLE_FIELDS: Fields = {
    "train_roles": None,
    "heldout": None,
    "group": (ROLES, "group_size"),
    "steps": (ROLES, "steps"),
    "problems_per_step": (ROLES, "problems_per_step"),
    "lr": (ROLES, "learning_rate"),
    "loss_type": (ROLES, "loss_type"),
    "beta": (ROLES, "beta"),
    "alpha": (ROLES, "alpha"),
    "reward": (ROLES, "reward"),
    "consensus_min_share": (ROLES, "consensus_min_share"),
    "shared_policy": (ROLES, "shared_policy"),
    "lora_r": (ROLES, "lora_r"),
    "eval_every": (ROLES, "eval_every"),
    "guard": (ROLES, "guard"),
    "rollback_drop": (ROLES, "rollback_drop"),
    "minutes": (ROLES, "time_limit_min"),
    "top_p": (ROLES, "top_p"),
    "top_k": (ROLES, "top_k"),
    "micro_batch": (ROLES, "micro_batch"),
    "gradient_checkpointing": (ROLES, "gradient_checkpointing"),
    "importance_sampling": (ROLES, "importance_sampling"),
    "report_to": (ROLES, "report_to"),
}
JOINT_FIELDS: Fields = {
    **ROLE_FIELDS,
    "steps": (JointConfig, "steps"),
    "schedule": (JointConfig, "schedule"),
    "base": None,
    "token_cost": (GRAPH, "token_cost"),
    "prune_threshold": (GRAPH, "prune_threshold"),
}
# a short CLI name → the config field's own name, which the parser accepts too (`--group-size` is
# `--group`): a flag written as in Python works on the command line
CONFIG_NAMES: dict[str, str] = {
    cli: spec[1]
    for fields in (GRAPH_FIELDS, ROLE_FIELDS, JOINT_FIELDS)
    for cli, spec in fields.items()
    if spec is not None and spec[1] != cli
}
_OWN = {
    "base": (
        str | None,
        Field(None, description="base topology whose edges are the candidates, e.g. full:6"),
    ),
    "train_roles": (str | None, Field(None, description="comma-separated roles, e.g. solver,critic")),
    "heldout": (
        str | None,
        Field(None, description="held-out dataset spec, evaluated every --eval-every steps"),
    ),
}


def _trainer_options(name: str, fields: Fields) -> type[Solve]:
    spec: dict[str, Any] = {k: _OWN[k] if v is None else _from(*v) for k, v in fields.items()}
    base: Any = (Solve, DataOptions)
    return cast(type[Solve], create_model(name, __base__=base, **spec))


TrainGraphOptions = _trainer_options("TrainGraphOptions", GRAPH_FIELDS)
TrainRolesOptions = _trainer_options("TrainRolesOptions", ROLE_FIELDS)
TrainJointOptions = _trainer_options("TrainJointOptions", JOINT_FIELDS)
