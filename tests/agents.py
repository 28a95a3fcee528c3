"""Scripted agents for CLI tests (``--backend scripted --scripted tests.agents:calc``)."""

from __future__ import annotations

import re

from agentgraph.backends import ScriptedCall

_ARITH = re.compile(r"What is (-?\d+) ([+\-*]) (-?\d+)\?")


def _solve(problem: str) -> int | None:
    m = _ARITH.search(problem)
    if m is None:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b if op == "-" else a * b


def calc(call: ScriptedCall) -> str:
    """Always right on generated arithmetic."""
    return f"The result is \\boxed{{{_solve(call.problem)}}}."


def noisy(call: ScriptedCall) -> str:
    """Right 60% of the time, otherwise off by one (seeded per session/agent/round)."""
    v = _solve(call.problem) or 0
    return f"\\boxed{{{v if call.rng.random() < 0.6 else v + 1}}}"


def slow_calc(call: ScriptedCall) -> str:
    """Like ``calc`` but takes 20 ms (blocking), so a test can kill a run part-way."""
    import time

    time.sleep(0.02)
    return calc(call)


async def staggered_calc(call: ScriptedCall) -> str:
    """Like ``calc``, but session ``…-i`` waits 50·i ms per turn (without blocking the loop), so the
    sessions of an all-in-flight eval finish one by one over seconds and a test can kill a run
    part-way however fast the machine is."""
    import asyncio

    index = int(call.request.meta.session.rsplit("-", 1)[-1])
    await asyncio.sleep(0.05 * index)
    return calc(call)


async def sleepy_calc(call: ScriptedCall) -> str:
    """Like ``calc`` but each turn waits 20 ms without blocking the loop (a server stays responsive)."""
    import asyncio

    await asyncio.sleep(0.02)
    return calc(call)
