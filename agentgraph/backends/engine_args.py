"""``--engine-arg KEY=VALUE``: any vLLM engine argument, checked by vLLM's own argument parser.

There is no hand-kept list here: the names, types and choices are those of
``AsyncEngineArgs.add_cli_args`` in the installed vLLM, so a new vLLM release's arguments work as
soon as it is installed, and a misspelt one is refused before any engine starts. Keys may be
written ``max_num_batched_tokens`` or ``max-num-batched-tokens``; booleans take ``true``/``false``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from agentgraph.core.errors import ConfigError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError as e:
        raise ConfigError(
            "engine_arg", f"vLLM is not importable ({e})", "install agentgraph[cpu] or agentgraph[gpu]"
        ) from None
    base = FlexibleArgumentParser(exit_on_error=False)  # type: ignore[no-untyped-call]
    parser: argparse.ArgumentParser = AsyncEngineArgs.add_cli_args(base)
    return parser


def check(settings: dict[str, Any]) -> None:
    """Our own engine flags (``--dtype``, ``--kv-cache-dtype``) checked by the same vLLM parser, so a
    value vLLM refuses is a one-line error naming the flag before any engine (or its log) starts."""
    for key in ("dtype", "kv_cache_dtype"):
        if settings.get(key) is not None:
            try:
                parse([f"{key}={settings[key]}"])
            except ConfigError:
                choices = _parser()._option_string_actions["--" + key.replace("_", "-")].choices
                fix = f"use one of {', '.join(map(str, choices))}" if choices else "see `vllm serve --help`"
                raise ConfigError(key, f"{settings[key]!r} is refused by vLLM", fix) from None


def parse(pairs: Sequence[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` as ``AsyncEngineArgs`` keyword arguments, typed by vLLM's parser."""
    if not pairs:
        return {}
    parser = _parser()
    actions = {s: a for a in parser._actions for s in a.option_strings}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                "engine_arg", f"{pair!r} is not KEY=VALUE", "e.g. --engine-arg max_num_batched_tokens=8192"
            )
        flag = "--" + key.replace("_", "-")
        action = actions.get(flag)
        if action is None or flag in ("--model", "--help"):
            raise ConfigError(
                "engine_arg", f"vLLM has no engine argument {key!r}", "see `vllm serve --help` for the names"
            )
        if action.nargs == 0:  # --x / --no-x
            v = value.strip().lower()
            if v not in _TRUE | _FALSE:
                raise ConfigError("engine_arg", f"{key} takes true or false, not {value!r}", f"{key}=true")
            argv = [flag if v in _TRUE else "--no-" + flag[2:]]
            if v in _FALSE and "--no-" + flag[2:] not in actions:
                raise ConfigError("engine_arg", f"{key} cannot be switched off", f"leave {key} out")
        else:
            argv = [flag, *(value.split() if action.nargs in ("+", "*") else [value])]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                ns, rest = parser.parse_known_args(argv)
        except (argparse.ArgumentError, SystemExit, ValueError, TypeError) as e:
            raise ConfigError(
                "engine_arg", f"{key}={value!r} is refused by vLLM ({e})", "fix the value"
            ) from None
        if rest:
            raise ConfigError("engine_arg", f"{key}={value!r} is refused by vLLM", "fix the value")
        out[action.dest] = getattr(ns, action.dest)
    return out
