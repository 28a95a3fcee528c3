"""The async scheduler: runs many sessions with every independent request in flight.

How one session spends its requests is its team's strategy (:mod:`agentgraph.engine.rounds` by
default: generations in order, one generation's agents concurrently). :func:`run` starts every
session at once; the backend's
own semaphore bounds what is in flight, so the engine sees the widest batch the dependency structure
allows (vLLM's continuous batching and prefix caching do the rest).

``solve``/``solve_many`` are :func:`prepare` (build the sessions and measure every round-0 prompt
against the backend's context, so an over-long problem is refused before any request is sent) then
:func:`run`. Callers that must refuse before they write anything (``evaluate``) call the two
separately; each prompt is still measured once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from agentgraph.backends.base import Backend
from agentgraph.core.errors import ConfigError
from agentgraph.engine import eager
from agentgraph.engine.gc_hold import held
from agentgraph.engine.session import Session
from agentgraph.engine.transcript import SessionResult, TranscriptWriter
from agentgraph.engine.voices import Voices
from agentgraph.team.team import Team


def prepare(
    team: Team,
    problems: Sequence[str],
    backend: Backend,
    *,
    golds: Sequence[str | None] | None = None,
    session_ids: Sequence[str | None] | None = None,
) -> list[Session]:
    """One checked :class:`Session` per problem: text present, round-0 prompts within the context."""
    n = len(problems)
    golds = list(golds) if golds is not None else [None] * n
    ids = list(session_ids) if session_ids is not None else [None] * n
    if len(golds) != n or len(ids) != n:
        raise ConfigError(
            "golds", "golds and session_ids must match problems in length", "pass one per problem"
        )
    sessions: list[Session] = []
    voices = Voices(team, backend)  # one team, one backend: each speaker resolved once for all
    bounded = True
    for problem, gold, sid in zip(problems, golds, ids, strict=True):
        if not isinstance(problem, str) or not problem.strip():
            raise ConfigError("problem", "empty problem text", "pass the problem as a non-empty string")
        s = Session(team, problem, backend, sid or os.urandom(6).hex(), gold, voices)
        if not sessions:  # what the models need does not depend on the problem: checked once
            s.resolve_models()
            bounded = s.bounded()
        if bounded:
            s.check_context()
        sessions.append(s)
    return sessions


async def run(
    sessions: Sequence[Session], *, writer: TranscriptWriter | None = None, progress: bool = False
) -> list[SessionResult]:
    """Every session at once; results in the order of ``sessions``. While they run, full passes of
    the cyclic GC are held back (:mod:`agentgraph.engine.gc_hold`)."""
    if len(sessions) == 1 and not progress:
        return [await sessions[0].run(writer)]
    with held():
        return await _gather(sessions, writer, progress)


async def _gather(
    sessions: Sequence[Session], writer: TranscriptWriter | None, progress: bool
) -> list[SessionResult]:
    if not progress:  # no per-session wrapper: one coroutine frame less per session
        return await eager.gather(*(s.run(writer) for s in sessions), eager=all(s.eager for s in sessions))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sessions), desc="sessions", unit="session")

    async def one(s: Session) -> SessionResult:
        r = await s.run(writer)
        bar.update(1)
        return r

    try:
        return list(await asyncio.gather(*(one(s) for s in sessions)))
    finally:
        bar.close()


async def solve(
    team: Team,
    problem: str,
    backend: Backend,
    *,
    gold: str | None = None,
    session_id: str | None = None,
    writer: TranscriptWriter | None = None,
) -> SessionResult:
    """Run ``team`` on one problem.

    Parameters
    ----------
    team : Team
    problem : str
    backend : Backend
        A started backend (``async with backend: ...``).
    gold : str, optional
        The right answer: the result's ``correct`` is set when it is given.
    session_id : str, optional
        Default: a random id.
    writer : TranscriptWriter, optional
        Receives the session header, every turn as it finishes, and the result.

    Returns
    -------
    SessionResult
    """
    [s] = prepare(team, [problem], backend, golds=[gold], session_ids=[session_id])
    return await s.run(writer)


async def solve_many(
    team: Team,
    problems: Sequence[str],
    backend: Backend,
    *,
    golds: Sequence[str | None] | None = None,
    session_ids: Sequence[str] | None = None,
    writer: TranscriptWriter | None = None,
    progress: bool = False,
) -> list[SessionResult]:
    """Run ``team`` on every problem with every session in flight; results in the order of
    ``problems``. Every prompt is checked before the first request is sent."""
    sessions = prepare(team, problems, backend, golds=golds, session_ids=session_ids)
    return await run(sessions, writer=writer, progress=progress)
