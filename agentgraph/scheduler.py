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
import os
import time
from collections.abc import Sequence

from agentgraph.accounting import account
from agentgraph.answers import answer_key, extract, is_correct, parse_score
from agentgraph.backends.base import Adapter, Backend, GenerationRequest, RequestMeta
from agentgraph.errors import BackendError, ConfigError
from agentgraph.generation import SessionOverflow, fit, generate_turn, reserve
from agentgraph.messages import Decision, Turn, TurnKind
from agentgraph.prompts import PeerView, build_messages, view
from agentgraph.roles import Role
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.team import Team
from agentgraph.thinking import ThinkFormat
from agentgraph.transcript import RecordSink, SessionHeader, SessionResult, TranscriptWriter, TurnRecord


class Session:
    """One team on one problem; built by :func:`prepare`, run by :func:`run`."""

    def __init__(self, team: Team, problem: str, backend: Backend, session: str, gold: str | None) -> None:
        self.team = team
        self.problem = problem
        self.backend = backend
        self.session = session
        self.gold = gold
        self.writer: RecordSink | None = None
        self.turns: list[Turn] = []
        self.t0 = 0.0
        self.logprobs = team.policy.logprobs
        # one random nonce per session keeps request ids unique in the engine even when session ids
        # repeat across runs on one engine (a uuid per request cost more than building its prompt)
        self.nonce = os.urandom(4).hex()
        self.think: ThinkFormat | None = None
        # a cascade's stages run as child sessions of one session: their rounds follow the earlier
        # stages' rounds in the transcript
        self.round_offset = 0
        self._settings: dict[tuple[str, str, TurnKind], tuple[Sampling, Adapter | None]] = {}

    def settings(self, agent: str, role: Role, kind: TurnKind) -> tuple[Sampling, Adapter | None]:
        """Sampling and adapter of a speaker, resolved once per session (they cannot change inside one)."""
        key = (agent, role.name, kind)
        if (hit := self._settings.get(key)) is None:
            who = agent if kind in ("agent", "score") else None
            sampling = self.team.sampling_for(who, role)
            if self.logprobs and not sampling.logprobs:
                sampling = sampling.merged(SamplingOverrides(logprobs=True))
            hit = self._settings[key] = (sampling, self.team.adapter_for(who, role))
        return hit

    def request(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> GenerationRequest:
        sampling, adapter = self.settings(agent, role, kind)
        team = self.team
        return GenerationRequest(
            messages=build_messages(
                role, self.problem, peers, team.share_of(role), team.preset.system_prompt
            ),
            sampling=sampling,
            adapter=adapter,
            meta=RequestMeta(
                session=self.session,
                agent=agent,
                role=role.name,
                round=rnd + self.round_offset,
                kind=kind,
                problem=self.problem,
            ),
            request_id=self.request_id(rnd, agent, 1, 1),
        )

    def request_id(self, rnd: int, agent: str, phase: int, attempt: int) -> str:
        # a fresh id per attempt: an aborted id is never reused inside the engine
        return f"{self.session}:r{rnd + self.round_offset}:{agent}:{self.nonce}-p{phase}a{attempt}"

    def child(self, team: Team, round_offset: int) -> Session:
        """A session of ``team`` on the same problem that writes into this one's transcript (same
        session id, turns, writer, clock), its rounds numbered from ``round_offset`` — how a
        cascade runs its stages. The stage's agents must be named apart from the other stages'."""
        c = Session(team, self.problem, self.backend, self.session, self.gold)
        c.turns, c.writer, c.t0, c.nonce = self.turns, self.writer, self.t0, self.nonce
        c.think, c.round_offset = self.think, round_offset
        return c

    def resolve_think(self) -> None:
        """The think markers: the team's, or the served model's (known once the backend started)."""
        think = self.team.think
        self.think = None if think == "none" else self.backend.think_format if think == "auto" else think
        if self.think is None and any(
            self.team.sampling_for(a, self.team.role(a)).thinking_budget is not None for a in self.team.agents
        ):
            raise ConfigError(
                "thinking_budget",
                "the model's chat template marks no thinking, so a budget cannot be kept",
                "name the markers (think: '<think>,</think>') or drop the budget",
            )

    def check_context(self) -> None:
        limit = self.backend.max_context
        if limit is None:
            return
        for agent in self.team.topology.agents:
            role = self.team.role(agent)
            sampling, _ = self.settings(agent, role, "agent")
            room = max(reserve(sampling, r, self.think) for r in range(self.team.rounds))
            req = self.request(agent, role, 0, "agent", [])
            n = self.backend.count_prompt_tokens(req)
            if n is not None and n + room > limit:
                if room == 1:
                    raise ConfigError(
                        "problem",
                        f"the prompt of {agent} is {n} tokens, over the context of {limit}",
                        "shorten the problem or use a model with a longer context",
                    )
                raise ConfigError(
                    "thinking_budget",
                    f"{room - sampling.answer_tokens} thinking + {sampling.answer_tokens} answer tokens "
                    f"after the {n}-token prompt of {agent} are over the context of {limit}",
                    "lower the budget or raise --max-model-len",
                )

    async def speak(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> Turn:
        started = time.perf_counter() - self.t0
        if kind == "agent" and role.answer_format == "score":
            kind = "score"
        sampling, adapter = self.settings(agent, role, kind)
        base = {
            "id": f"{self.session}:r{rnd + self.round_offset}:{agent}",
            "session": self.session,
            "agent": agent,
            "role": role.name,
            "round": rnd + self.round_offset,
            "kind": kind,
            "adapter": adapter.name if adapter else None,
            "started_s": started,
        }
        try:
            req, dropped = fit(
                self.backend,
                lambda shown: self.request(agent, role, rnd, kind, shown),
                peers,
                reserve(sampling, rnd, self.think),
                self.team.overflow == "truncate-peers",
            )
        except SessionOverflow as e:
            self.record(Turn(**base, read=[p.turn_id for p in peers], error=f"SessionOverflow: {e}"))
            raise
        base["read"] = [p.turn_id for p in peers if p.turn_id not in dropped]
        failures: list[str] = []
        try:
            out = await generate_turn(
                self.backend,
                req,
                role,
                rnd,
                self.think,
                self.team.retry,
                failures,
                lambda phase, attempt: self.request_id(rnd, agent, phase, attempt),
            )
        except (BackendError, ConfigError, TimeoutError) as e:
            turn = Turn(
                **base,
                dropped_peers=dropped,
                error=f"{type(e).__name__}: {e}",
                latency_s=time.perf_counter() - self.t0 - started,
                attempts=max(1, len(failures)),
                failed_attempts=failures,
            )
            self.record(turn)
            if self.team.on_error == "raise" or isinstance(e, ConfigError):
                raise
            return turn
        final = out.text[out.thinking_chars :] if out.thinking_closed else ""
        turn = Turn(
            **base,
            text=out.text,
            answer=extract(final)
            if role.answer_format == "boxed" or (role.answer_format == "step" and "\\boxed" in final)
            else None,
            score=parse_score(final, *role.score_range) if role.answer_format == "score" else None,
            prompt_token_ids=out.prompt_token_ids,
            completion_token_ids=out.token_ids,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            requests=max(1, out.requests),
            thinking_chars=out.thinking_chars,
            thinking_closed=out.thinking_closed,
            thinking_tokens=out.thinking_tokens,
            forced_tokens=out.forced_tokens,
            dropped_peers=dropped,
            logprobs=out.logprobs,
            finish_reason=out.finish_reason,
            latency_s=out.latency_s,
            attempts=max(1, out.attempts),
            failed_attempts=failures,
        )
        self.record(turn)
        return turn

    def record(self, turn: Turn) -> None:
        self.turns.append(turn)
        if self.writer is not None:
            self.writer.write(TurnRecord(turn=turn))

    async def run(self, writer: RecordSink | None = None) -> SessionResult:
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
                    decision=team.strategy.name if team.strategy is not None else team.decision.name,
                )
            )
        try:
            decision, rounds_run, stopped_early = await self.play()
        except SessionOverflow as e:
            # this session cannot go on; the others of the run are not affected
            decision = Decision(method="failed", answer=None, note=f"context overflow: {e}")
            rounds_run, stopped_early = 1 + max((t.round for t in self.turns), default=0), False
        result = self.result(decision, rounds_run, stopped_early)
        if writer is not None:
            writer.write(result)
        return result

    async def play(self) -> tuple[Decision, int, bool]:
        """The team's strategy (beam search, cascade) or its rounds and decision:
        ``(decision, rounds_run, stopped_early)``."""
        if self.team.strategy is not None:
            return await self.team.strategy.run(self)
        return await self.rounds()

    async def rounds(self) -> tuple[Decision, int, bool]:
        team, topo = self.team, self.team.topology
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
        return decision, rounds_run, stopped_early

    def result(self, decision: Decision, rounds_run: int, stopped_early: bool) -> SessionResult:
        total, by_agent, by_round, edges = account(self.turns)
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
            usage=total,
            usage_by_agent=by_agent,
            usage_by_round=by_round,
            tokens_by_edge=edges,
            wall_s=time.perf_counter() - self.t0,
            errors=sum(1 for t in self.turns if not t.ok),
            failure=decision.note if decision.method == "failed" else None,
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
        s.resolve_think()
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
