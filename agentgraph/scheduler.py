"""The async scheduler: runs sessions round by round with every independent request in flight.

Inside a session, round r runs the spatial generations of the topology in order and the agents of
one generation concurrently (``asyncio.gather``). Round r reads round r−1 only, through temporal
edges filtered by the inter-round policy. ``run_many`` starts every session at once; the backend's
own semaphore bounds what is in flight, so the engine sees the widest batch the dependency structure
allows (vLLM's continuous batching and prefix caching do the rest).

``solve``/``solve_many`` are :func:`prepare` (build the sessions and measure every round-0 prompt
against the backend's context, so an over-long problem is refused before any request is sent) then
:func:`run`. Callers that must refuse before they write anything (``evaluate``) call the two
separately; each prompt is still measured once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence

from agentgraph.answers import answer_key, extract, is_correct
from agentgraph.backends.base import Adapter, Backend, Completion, GenerationRequest, RequestMeta
from agentgraph.errors import BackendError, ConfigError
from agentgraph.messages import Decision, Turn, TurnKind, Usage
from agentgraph.prompts import PeerView, build_messages, view
from agentgraph.retry import call_with_retries
from agentgraph.roles import Role
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.team import Team
from agentgraph.transcript import SessionHeader, SessionResult, TranscriptWriter, TurnRecord


class Session:
    """One team on one problem; built by :func:`prepare`, run by :func:`run`."""

    def __init__(self, team: Team, problem: str, backend: Backend, session: str, gold: str | None) -> None:
        self.team = team
        self.problem = problem
        self.backend = backend
        self.session = session
        self.gold = gold
        self.writer: TranscriptWriter | None = None
        self.turns: list[Turn] = []
        self.t0 = 0.0
        self.logprobs = team.policy.logprobs
        # one random nonce per session keeps request ids unique in the engine even when session ids
        # repeat across runs on one engine (a uuid per request cost more than building its prompt)
        self.nonce = os.urandom(4).hex()
        self._settings: dict[tuple[str, str, TurnKind], tuple[Sampling, Adapter | None]] = {}

    def settings(self, agent: str, role: Role, kind: TurnKind) -> tuple[Sampling, Adapter | None]:
        """Sampling and adapter of a speaker, resolved once per session (they cannot change inside one)."""
        key = (agent, role.name, kind)
        if (hit := self._settings.get(key)) is None:
            who = agent if kind == "agent" else None
            sampling = self.team.sampling_for(who, role)
            if self.logprobs and not sampling.logprobs:
                sampling = sampling.merged(SamplingOverrides(logprobs=True))
            hit = self._settings[key] = (sampling, self.team.adapter_for(who, role))
        return hit

    def request(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> GenerationRequest:
        sampling, adapter = self.settings(agent, role, kind)
        return GenerationRequest(
            messages=build_messages(role, self.problem, peers),
            sampling=sampling,
            adapter=adapter,
            meta=RequestMeta(
                session=self.session, agent=agent, role=role.name, round=rnd, kind=kind, problem=self.problem
            ),
            request_id=self.request_id(rnd, agent, 1),
        )

    def request_id(self, rnd: int, agent: str, attempt: int) -> str:
        # a fresh id per attempt: an aborted id is never reused inside the engine
        return f"{self.session}:r{rnd}:{agent}:{self.nonce}-a{attempt}"

    def check_context(self) -> None:
        limit = self.backend.max_context
        if limit is None:
            return
        for agent in self.team.topology.agents:
            role = self.team.role(agent)
            req = self.request(agent, role, 0, "agent", [])
            n = self.backend.count_prompt_tokens(req)
            if n is not None and n + 1 > limit:
                raise ConfigError(
                    "problem",
                    f"the prompt of {agent} is {n} tokens, over the context of {limit}",
                    "shorten the problem or use a model with a longer context",
                )

    async def speak(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> Turn:
        req = self.request(agent, role, rnd, kind, peers)
        started = time.perf_counter() - self.t0
        base = {
            "id": f"{self.session}:r{rnd}:{agent}",
            "session": self.session,
            "agent": agent,
            "role": role.name,
            "round": rnd,
            "kind": kind,
            "read": [p.turn_id for p in peers],
            "adapter": req.adapter.name if req.adapter else None,
            "started_s": started,
        }
        failures: list[str] = []
        tries = 0

        def attempt() -> Awaitable[Completion]:
            nonlocal tries
            tries += 1
            if tries == 1:
                return self.backend.generate(req)
            return self.backend.generate(
                dataclasses.replace(req, request_id=self.request_id(rnd, agent, tries))
            )

        try:
            c = await call_with_retries(self.team.retry, attempt, failures)
        except (BackendError, ConfigError, TimeoutError) as e:
            turn = Turn(
                **base,
                error=f"{type(e).__name__}: {e}",
                latency_s=time.perf_counter() - self.t0 - started,
                attempts=max(1, tries),
                failed_attempts=failures,
            )
            self.record(turn)
            if self.team.on_error == "raise" or isinstance(e, ConfigError):
                raise
            return turn
        turn = Turn(
            **base,
            text=c.text,
            answer=extract(c.text) if role.answer_format == "boxed" else None,
            prompt_token_ids=c.prompt_token_ids,
            completion_token_ids=c.token_ids,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            logprobs=c.logprobs,
            finish_reason=c.finish_reason,
            latency_s=c.latency_s,
            attempts=tries,
            failed_attempts=failures,
        )
        self.record(turn)
        return turn

    def record(self, turn: Turn) -> None:
        self.turns.append(turn)
        if self.writer is not None:
            self.writer.write(TurnRecord(turn=turn))

    async def run(self, writer: TranscriptWriter | None = None) -> SessionResult:
        """Every round, then the decision; header, turns and result go to ``writer`` as they happen."""
        team, topo = self.team, self.team.topology
        self.writer = writer
        self.t0 = time.perf_counter()
        if writer is not None:
            writer.write(
                SessionHeader(
                    session=self.session,
                    problem=self.problem,
                    gold=self.gold,
                    topology=str(topo.graph.get("name", "topology")),
                    agents={a: topo.role_of(a) for a in team.agents},
                    rounds=team.rounds,
                    inter_round=team.policy.name,
                    decision=team.decision.name,
                )
            )
        prev: dict[str, Turn] = {}
        rounds_run, stopped_early = 0, False
        for rnd in range(team.rounds):
            carried = (
                await team.policy.carry(
                    rnd,
                    {a: t for a, t in prev.items() if t.ok},
                    team.agents,
                    team.temporal_predecessors,
                    team.roles,
                    self.speak,
                )
                if rnd > 0
                else {}
            )
            current: dict[str, Turn] = {}
            for generation in team.generations:
                # spatial predecessors sit in earlier generations, so every view exists already
                speeches = [
                    self.speak(
                        agent,
                        team.role(agent),
                        rnd,
                        "agent",
                        carried.get(agent, [])
                        + [
                            view(current[u], "spatial")
                            for u in team.spatial_predecessors[agent]
                            if current[u].ok
                        ],
                    )
                    for agent in generation
                ]
                # one agent needs no task (chains); several run concurrently
                done = [await speeches[0]] if len(speeches) == 1 else await asyncio.gather(*speeches)
                for t in done:
                    current[t.agent] = t
            prev = current
            rounds_run = rnd + 1
            if team.early_stop and rnd + 1 < team.rounds:
                keys = {answer_key(t.answer) for t in current.values()}
                if len(keys) == 1 and None not in keys:
                    stopped_early = True
                    break
        last = [prev[a] for a in team.agents]
        decision = await team.decision.decide(topo, last, self.session, team.roles, self.speak)
        result = self.result(decision, rounds_run, stopped_early)
        if writer is not None:
            writer.write(result)
        return result

    def result(self, decision: Decision, rounds_run: int, stopped_early: bool) -> SessionResult:
        # plain int counters, one Usage per key at the end (pydantic additions per turn were the
        # largest cost of this function)
        by_agent: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        by_round: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        total = [0, 0, 0]
        agent_of = {t.id: t for t in self.turns}
        edges: dict[tuple[str, str, str], int] = defaultdict(int)
        for t in self.turns:
            p, c = (t.prompt_tokens, t.completion_tokens) if t.ok else (0, 0)
            for acc in (total, by_agent[t.agent], by_round[t.round]):
                acc[0] += p
                acc[1] += c
                acc[2] += 1
            for rid in t.read:
                src = agent_of[rid]
                how: str
                if t.kind != "agent":
                    how = t.kind
                elif src.kind == "summary":
                    how = "summary"
                else:
                    how = "spatial" if src.round == t.round else "temporal"
                edges[src.agent, t.agent, how] += src.completion_tokens

        def usage(acc: list[int]) -> Usage:
            return Usage(prompt_tokens=acc[0], completion_tokens=acc[1], requests=acc[2])

        gold = self.gold
        return SessionResult(
            session=self.session,
            problem=self.problem,
            gold=gold,
            answer=decision.answer,
            correct=None if gold is None else is_correct(decision.answer, gold),
            decision=decision,
            rounds_run=rounds_run,
            stopped_early=stopped_early,
            usage=usage(total),
            usage_by_agent={a: usage(acc) for a, acc in by_agent.items()},
            usage_by_round={r: usage(acc) for r, acc in by_round.items()},
            tokens_by_edge={f"{u}->{v} ({how})": n for (u, v, how), n in edges.items()},
            wall_s=time.perf_counter() - self.t0,
            errors=sum(1 for t in self.turns if not t.ok),
            turns=list(self.turns),
        )


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
    sessions = []
    for problem, gold, sid in zip(problems, golds, ids, strict=True):
        if not isinstance(problem, str) or not problem.strip():
            raise ConfigError("problem", "empty problem text", "pass the problem as a non-empty string")
        s = Session(team, problem, backend, sid or os.urandom(6).hex(), gold)
        s.check_context()
        sessions.append(s)
    return sessions


async def run(
    sessions: Sequence[Session], *, writer: TranscriptWriter | None = None, progress: bool = False
) -> list[SessionResult]:
    """Every session at once; results in the order of ``sessions``."""
    if len(sessions) == 1 and not progress:
        return [await sessions[0].run(writer)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(sessions), desc="sessions", unit="session")

    async def one(s: Session) -> SessionResult:
        r = await s.run(writer)
        if bar is not None:
            bar.update(1)
        return r

    try:
        return list(await asyncio.gather(*(one(s) for s in sessions)))
    finally:
        if bar is not None:
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
