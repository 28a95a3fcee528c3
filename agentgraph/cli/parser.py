"""The argument parser, generated from the options models; ``--config`` files merged under the flags.

Every field of a command's model becomes ``--field-name`` with the field's help and default; a
boolean becomes ``--x/--no-x``, a list a repeatable flag. Flags left out are ``None`` here, so the
model's default (or the config file's value) applies.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentgraph.cli.commands import OPTIONS
from agentgraph.cli.options import Common
from agentgraph.cli.train_options import CONFIG_NAMES
from agentgraph.core.errors import ConfigError, from_validation, read_yaml_mapping

# command -> (dest, metavar, help) of its positional argument
POSITIONAL = {
    "run": ("problem", "PROBLEM", "the problem text"),
    "show": ("topology_spec", "TOPOLOGY", "a spec"),
    "view": ("run", "RUN", "a run directory (eval, compare, demo, serve or train)"),
}
HELP = {
    "run": "one team on one problem",
    "eval": "one team over a dataset",
    "compare": "several topologies over a dataset, side by side",
    "show": "describe and draw a topology",
    "demo": "the main job: single agent vs three topologies on generated arithmetic",
    "serve": "teams as OpenAI-compatible models over HTTP (/v1/models, /v1/chat/completions)",
    "view": "a self-contained HTML viewer of a run's transcripts (and training curves)",
    "train:graph": "graph GRPO on the edge logits of a base topology, then prune",
    "train:roles": "role GRPO: one LoRA adapter per trained role, rollouts on vLLM",
    "train:joint": "graph GRPO and role GRPO from the same rollouts",
}


def _scalar(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return typing.get_origin(annotation) or annotation


def add_options(p: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    for name, info in model.model_fields.items():
        if name == "json_output":
            p.add_argument("--json", dest="json", action="store_true", default=None, help=info.description)
            continue
        flags = ["--" + name.replace("_", "-")]
        if name in CONFIG_NAMES:  # the config field's own name works too
            flags.append("--" + CONFIG_NAMES[name].replace("_", "-"))
        kind = _scalar(info.annotation)
        default = info.get_default(call_default_factory=True)
        shown = f" (default {default})" if default not in (None, [], False) else ""
        help_ = (info.description or "") + shown
        if kind is bool:
            p.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind is list:
            p.add_argument(*flags, dest=name, action="append", help=help_ + " (repeatable)")
        elif kind in (int, float):
            p.add_argument(*flags, dest=name, type=kind, help=help_)
        else:  # str, Literal choices, paths: pydantic validates them
            p.add_argument(*flags, dest=name, help=help_)
    p.add_argument("--config", help="YAML file of options, keys are the long option names (flags win)")


class Parser(argparse.ArgumentParser):
    """argparse with our one-line errors: ``error: FIELD: PROBLEM (FIX)``, exit status 2 — a flag
    of the wrong type reads like any other bad input, not a usage screen."""

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("argument "):  # "argument --port: invalid int value: 'x'"
            flag, _, rest = message.removeprefix("argument ").partition(": ")
            message = f"{flag.split('/')[0].lstrip('-').replace('-', '_')}: {rest}"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="agentgraph", description="Teams of small reasoning models on vLLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", help="train a team: its graph (edge weights), its roles (LoRA adapters) or both"
    )
    tsub = train.add_subparsers(dest="target", required=True)
    for command, model in OPTIONS.items():
        group, _, target = command.partition(":")
        p = (tsub if target else sub).add_parser(target or group, help=HELP[command])
        if command in POSITIONAL:
            dest, metavar, help_ = POSITIONAL[command]
            p.add_argument(dest, metavar=metavar, help=help_)
        add_options(p, model)
    return parser


def command_of(ns: argparse.Namespace) -> str:
    return f"train:{ns.target}" if ns.command == "train" else str(ns.command)


def resolve_options(ns: argparse.Namespace) -> Common:
    """The command's options: its ``--config`` file (if any) under the flags given, validated."""
    model = OPTIONS[command_of(ns)]
    data: dict[str, Any] = {}
    config = getattr(ns, "config", None)
    if config:
        loaded = read_yaml_mapping(Path(config), "config", "a mapping of option: value, e.g. rounds: 2")
        cli_name = {field: cli for cli, field in CONFIG_NAMES.items()}  # group_size: is group:
        data.update({cli_name.get(k.replace("-", "_"), k.replace("-", "_")): v for k, v in loaded.items()})
    skip = {"command", "target", "config", *(dest for dest, _, _ in POSITIONAL.values())}
    data.update({k: v for k, v in vars(ns).items() if k not in skip and v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as e:
        command = command_of(ns).replace(":", " ")
        raise from_validation(e, "config." if config else "", f"see agentgraph {command} --help") from None


__all__ = ["ConfigError", "build_parser", "command_of", "resolve_options"]
