"""Scheduler overhead: agent-turns per second and memory per 1,000 concurrent sessions.

    python bench/scheduler.py --json

Scripted backend with zero latency (agents answer ``\\boxed{1}`` at once), so the time measured is the
framework's own: prompt building, request bookkeeping, tokenizing, answer parsing, transcripts and
decisions. A 3-agent full debate, 2 rounds (6 turns per session), run with 1, 100 and 10,000
sessions in flight at once. Memory: tracemalloc's peak during a separate 10,000-session run.

Absolute rates swing about 2x between runs on shared machines, so the same run also times the bare
asyncio skeleton of the workload (a task per session, a task per agent, a gather per generation, no
work) at 100 sessions and reports ``overhead_ratio`` = our time per turn / the skeleton's: the figure
to compare across commits.

With ``--json`` the last line is one JSON object with ``agent_turns_per_s`` (the best of the three),
``mb_per_1000_sessions``, ``by_sessions``, ``skeleton_turns_per_s``, ``overhead_ratio`` (at 100
sessions), ``overhead_ratio_by_sessions`` and ``skeleton_turns_per_s_by_sessions`` (100 and
``--big``, each skeleton timed in the same run), ``overhead_ratio_fresh``,
``overhead_ratio_waiting`` and ``loop`` (``--loop uvloop`` runs on uvloop, which vLLM installs; the
default is the standard library's loop).

``overhead_ratio`` at 100 sessions is the best of 10 runs over the same 100 problems, each run on a
new backend (the scripted tokenizer caches lines per backend, so no run is served by an earlier
one's prompts); ``overhead_ratio_fresh`` is the same figure with new problems in every run, which
should match it (a cache that outlived its run would show here as a gap).
``overhead_ratio_waiting`` is the same ratio when every request waits once on the event loop (as a
request to an engine always does) and so does every turn of the skeleton. On a backend whose
requests finish at once the scheduler starts turns and sessions eagerly and a turn needs no task
(:mod:`agentgraph.engine.eager`): the zero-latency figure gains from that, and this one (like an
engine's backend, it declares no such thing) does not.

``--floor`` also times the structure alone at 100 sessions — the real scheduler, sessions, rounds,
gathers and results, with every ``speak`` returning a prebuilt turn — and adds ``floor_ratio``
(skeleton / that): what no work inside a turn can go below, so ``overhead_ratio − floor_ratio`` is
what a turn's own work (prompt, backend, record) costs in skeleton-turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc

import agentgraph as ag
from agentgraph.backends import Completion, GenerationRequest, Scripted
from agentgraph.graph.generators import full


def answer(call: object) -> str:
    return "\\boxed{1}"


class Waits(Scripted):
    """Answers at once, after one wait on the event loop, as every request to an engine waits (and,
    like an engine's backend, does not declare that its requests finish at once)."""

    eager = False  # type: ignore[assignment]

    async def generate(self, request: GenerationRequest) -> Completion:
        await asyncio.sleep(0)
        return await super().generate(request)


async def run(n: int, team: ag.Team, backend: Scripted | None = None, addend: int = 1) -> float:
    backend = backend or Scripted(default=answer)
    problems = [f"What is {i} + {addend}?" for i in range(n)]
    t = time.perf_counter()
    results = await ag.solve_many(team, problems, backend)
    dt = time.perf_counter() - t
    turns = sum(len(r.turns) for r in results)
    assert turns == 6 * n and all(r.answer == "1" for r in results)
    return turns / dt


async def floor(n: int, team: ag.Team) -> float:
    """The real scheduler on ``n`` sessions with each turn prebuilt (``speak`` answers at once)."""
    from agentgraph.core.messages import Turn
    from agentgraph.engine import scheduler

    made = {
        a: Turn(id=f"x:{a}", session="x", agent=a, role="solver", round=0, text="\\boxed{1}", answer="1")
        for a in team.agents
    }

    async def speak(agent: str, *_: object) -> Turn:
        return made[agent]

    sessions = scheduler.prepare(team, [f"What is {i} + 1?" for i in range(n)], Scripted(default=answer))
    for s in sessions:
        s.speak = speak  # type: ignore[method-assign,assignment]
    t = time.perf_counter()
    results = await scheduler.run(sessions)
    dt = time.perf_counter() - t
    assert all(r.answer == "1" for r in results)
    return 6 * n / dt


async def skeleton(n: int, rounds: int = 2, agents: int = 3, wait: bool = False) -> float:
    """The same dependency structure with no work: what asyncio alone costs per agent-turn
    (``wait``: each turn waits once on the loop)."""

    async def turn() -> int:
        if wait:
            await asyncio.sleep(0)
        return 1

    async def session() -> int:
        done = 0
        for _ in range(rounds):  # full:3 has one spatial generation of three agents per round
            done += sum(await asyncio.gather(*(asyncio.ensure_future(turn()) for _ in range(agents))))
        return done

    t = time.perf_counter()
    turns = sum(await asyncio.gather(*(session() for _ in range(n))))
    return turns / (time.perf_counter() - t)


async def main(args: argparse.Namespace) -> dict[str, object]:
    team = ag.Team(full(3), rounds=2)
    by: dict[str, float] = {}
    for n, repeat in ((1, 500), (100, 10), (args.big, 1)):
        rates = []
        for _ in range(repeat if n > 1 else 1):
            if n == 1:  # one session at a time, many times
                t = time.perf_counter()
                for _ in range(repeat):
                    await ag.solve(team, "What is 1 + 1?", Scripted(default=answer))
                rates.append(6 * repeat / (time.perf_counter() - t))
            else:
                rates.append(await run(n, team))
        by[str(n)] = round(max(rates), 1)
        print(f"{n:>6} sessions in flight: {by[str(n)]:,.0f} agent-turns/s")
    bare = max([await skeleton(100) for _ in range(10)])
    ratio = bare / by["100"]
    print(f"bare asyncio skeleton at 100 sessions: {bare:,.0f} agent-turns/s; overhead ratio {ratio:.2f}")
    bare_big = await skeleton(args.big)
    ratio_big = bare_big / by[str(args.big)]
    print(
        f"bare asyncio skeleton at {args.big:,} sessions: {bare_big:,.0f} agent-turns/s; "
        f"overhead ratio {ratio_big:.2f}"
    )
    # new problems every time: should match the figure above, where every run has a new backend and
    # so cold tokenizer caches; a cache that outlived its run would show as a gap
    fresh = max([await run(100, team, addend=2 + k) for k in range(10)])
    print(
        f"new problems in every repetition, 100 sessions: {fresh:,.0f} agent-turns/s; "
        f"overhead ratio {bare / fresh:.2f}"
    )
    waiting = max([await run(100, team, Waits(default=answer)) for _ in range(10)])
    bare_waiting = max([await skeleton(100, wait=True) for _ in range(10)])
    print(
        f"every request waiting once, 100 sessions: {waiting:,.0f} agent-turns/s against a skeleton "
        f"of {bare_waiting:,.0f} (its turns waiting once too); overhead ratio {bare_waiting / waiting:.2f}"
    )
    extra: dict[str, object] = {
        "overhead_ratio_fresh": round(bare / fresh, 2),
        "overhead_ratio_waiting": round(bare_waiting / waiting, 2),
    }
    if args.floor:
        structure = max([await floor(100, team) for _ in range(10)])
        extra["floor_ratio"] = round(bare / structure, 2)
        print(
            f"the structure alone at 100 sessions: {structure:,.0f} turns/s; "
            f"floor ratio {bare / structure:.2f}"
        )
    tracemalloc.start()
    await run(args.big, team)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mb = peak / 2**20 / (args.big / 1000)
    print(f"peak memory: {peak / 2**20:.0f} MB for {args.big:,} sessions = {mb:.1f} MB per 1,000 sessions")
    return {
        "agent_turns_per_s": max(by.values()),
        "mb_per_1000_sessions": round(mb, 2),
        "by_sessions": by,
        "skeleton_turns_per_s": round(bare, 1),
        "overhead_ratio": round(ratio, 2),
        "overhead_ratio_by_sessions": {"100": round(ratio, 2), str(args.big): round(ratio_big, 2)},
        "skeleton_turns_per_s_by_sessions": {"100": round(bare, 1), str(args.big): round(bare_big, 1)},
        **extra,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--big", type=int, default=10_000, help="sessions in the largest run")
    p.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop (uvloop ships with vLLM)"
    )
    p.add_argument("--floor", action="store_true", help="also time the structure alone (floor_ratio)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.loop == "uvloop":
        import uvloop

        out = uvloop.run(main(a))
    else:
        out = asyncio.run(main(a))
    out["loop"] = a.loop
    if a.json:
        print(json.dumps(out))
