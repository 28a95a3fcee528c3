"""Every command and its options model: the parser and ``--config`` validation both read this."""

from __future__ import annotations

from agentgraph.cli.options import (
    Common,
    CompareOptions,
    DemoOptions,
    EvalOptions,
    RunOptions,
    ServeOptions,
    ShowOptions,
    ViewOptions,
)
from agentgraph.cli.train_options import TrainGraphOptions, TrainJointOptions, TrainRolesOptions

OPTIONS: dict[str, type[Common]] = {
    "run": RunOptions,
    "eval": EvalOptions,
    "compare": CompareOptions,
    "demo": DemoOptions,
    "show": ShowOptions,
    "serve": ServeOptions,
    "view": ViewOptions,
    "train:graph": TrainGraphOptions,
    "train:roles": TrainRolesOptions,
    "train:joint": TrainJointOptions,
}
"""Command -> its options model (the parser and ``--config`` validation both read this)."""
