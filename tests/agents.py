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
