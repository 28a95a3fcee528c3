"""The ``agentgraph`` command line: run, eval, compare, show, demo, train graph | roles | joint.

A thin layer over the library: ``options`` (one pydantic model per command, trainer options
generated from the trainer configs), ``parser`` (argparse generated from those models, ``--config``
YAML merged under the flags), and one module per command family (``solve``, ``train``) whose
commands call library functions and print. Bad input prints one line ``error: FIELD: PROBLEM (FIX)``
and exits with status 2. ``--json`` ends the output with one JSON object. Ctrl-C or SIGTERM cancels
the work and shuts the engine down (exit 130 / 143); what was already written stays on disk
(``eval --resume`` continues it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from agentgraph.cli.parser import build_parser, command_of, resolve_options
from agentgraph.cli.solve import cmd_compare, cmd_demo, cmd_eval, cmd_run, cmd_serve, cmd_show, cmd_view
from agentgraph.cli.train import cmd_train_graph, cmd_train_joint, cmd_train_roles
from agentgraph.core.errors import ConfigError

T = TypeVar("T")

COMMANDS: dict[str, Callable[[Any, Any], Awaitable[dict[str, Any]]]] = {
    "run": lambda o, ns: cmd_run(o, ns.problem),
    "eval": lambda o, ns: cmd_eval(o),
    "compare": lambda o, ns: cmd_compare(o),
    "show": lambda o, ns: cmd_show(o, ns.topology_spec),
    "demo": lambda o, ns: cmd_demo(o),
    "serve": lambda o, ns: cmd_serve(o),
    "view": lambda o, ns: cmd_view(o, ns.run),
    "train:graph": lambda o, ns: cmd_train_graph(o),
    "train:roles": lambda o, ns: cmd_train_roles(o),
    "train:joint": lambda o, ns: cmd_train_joint(o),
}


async def with_signals(coro: Awaitable[T]) -> T:
    """Run ``coro``, turning SIGTERM into cancellation so ``async with`` blocks shut engines down."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _coroutine(work: Awaitable[T]) -> T:
    return await work


def main(argv: Sequence[str] | None = None) -> int:
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a one-line argument error (2): a status, as for the rest
        return e.code if isinstance(e.code, int) else 2
    try:
        o = resolve_options(ns)
        command = command_of(ns)
        work = COMMANDS[command](o, ns)
        # serve: uvicorn owns SIGTERM (it stops accepting, finishes the requests in flight, then returns)
        summary: dict[str, Any] = asyncio.run(_coroutine(work) if command == "serve" else with_signals(work))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was written is kept (eval/compare: --resume continues)", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("terminated: what was written is kept (eval/compare: --resume continues)", file=sys.stderr)
        return 143
    if o.json_output and summary.get("process", 0) == 0:  # one JSON line per run, not per process
        print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
