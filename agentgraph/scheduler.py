"""The async scheduler: runs sessions round by round with every independent request in flight.

Inside a session, round r runs the spatial generations of the topology in order and the agents of
one generation concurrently (``asyncio.gather``). Round r reads round r−1 only, through temporal
edges filtered by the inter-round policy. ``run_many`` starts every session at once; the backend's
own semaphore bounds what is in flight, so the engine sees the widest batch the dependency structure
allows (vLLM's continuous batching and prefix caching do the rest).

Before the first request, every round-0 prompt is measured against the backend's context length, so
an over-long problem is refused instead of failing half-way.
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
from agentgraph.decisions import Decision, decide_without_judge, vote
from agentgraph.errors import BackendError, ConfigError
from agentgraph.inter_round import Partial, Summarize
from agentgraph.messages import Turn, TurnKind, Usage
from agentgraph.prompts import PeerView, build_messages
from agentgraph.retry import call_with_retries
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.team import Team
from agentgraph.transcript import SessionHeader, SessionResult, TranscriptWriter, TurnRecord
from roles import Role


def _view(t: Turn, how: str) -> PeerView:
    return PeerView(turn_id=t.id, agent=t.agent, role=t.role, round=t.round, text=t.text, how=how)


class _Session:
    def __init__(
        self, team: Team, problem: str, backend: Backend, session: str, writer: TranscriptWriter | None
    ) -> None:
        self.team = team
        self.problem = problem
        self.backend = backend
        self.session = session
        self.writer = writer
        self.turns: list[Turn] = []
        self.t0 = time.perf_counter()
        self.logprobs = isinstance(team.policy, Partial) and team.policy.score == "confidence"
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

    async def carry(self, rnd: int, prev: dict[str, Turn]) -> dict[str, list[PeerView]]:
        """What each agent reads from round ``rnd − 1``."""
        team, topo = self.team, self.team.topology
        answered = {a: t for a, t in prev.items() if t.ok}
        policy = team.policy
        out: dict[str, list[PeerView]] = {}
        if isinstance(policy, Summarize):
            readers = [a for a in topo.agents if team.temporal_predecessors[a]]
            if not readers or not answered:
                return {}
            role = team.roles[policy.role]
            peers = [_view(t, "temporal") for t in answered.values()]
            summary = await self.speak("summary", role, rnd - 1, "summary", peers)
            if not summary.ok:
                return {a: [] for a in readers}
            return {a: [_view(summary, "summary")] for a in readers}
        scores = policy.scores(list(answered.values())) if isinstance(policy, Partial) else {}
        order = {a: i for i, a in enumerate(topo.agents)}
        for agent in topo.agents:
            preds = [u for u in team.temporal_predecessors[agent] if u in answered]
            if isinstance(policy, Partial):
                others = sorted(
                    (u for u in preds if u != agent), key=lambda u: (-scores.get(u, 0.0), order[u])
                )
                preds = ([agent] if agent in preds else []) + others[: policy.k]
                preds.sort(key=order.__getitem__)
            out[agent] = [_view(answered[u], "own" if u == agent else "temporal") for u in preds]
        return out

    async def run(self, gold: str | None) -> SessionResult:
        team, topo = self.team, self.team.topology
        prev: dict[str, Turn] = {}
        rounds_run, stopped_early = 0, False
        for rnd in range(team.rounds):
            carried = await self.carry(rnd, prev) if rnd > 0 else {}
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
                            _view(current[u], "spatial")
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
        last = [prev[a] for a in topo.agents]
        decision = await self.decide(last, rounds_run)
        return self.result(gold, decision, rounds_run, stopped_early)

    async def decide(self, last: list[Turn], rounds_run: int) -> Decision:
        rule = self.team.decision
        if rule.name != "judge":
            return decide_without_judge(rule, self.team.topology, last, self.session)
        answered = [t for t in last if t.ok]
        judge = await self.speak(
            "judge",
            self.team.roles[rule.judge_role],
            rounds_run - 1,
            "judge",
            [_view(t, "temporal") for t in answered],
        )
        if judge.answer is not None:
            return Decision(method="judge", answer=judge.answer, decider="judge")
        fallback = vote(last, {}, self.session, "judge")
        fallback.note = "the judge gave no parseable answer; fell back to majority"
        return fallback

    def result(
        self, gold: str | None, decision: Decision, rounds_run: int, stopped_early: bool
    ) -> SessionResult:
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


async def run_session(
    team: Team,
    problem: str,
    backend: Backend,
    *,
    gold: str | None = None,
    session_id: str | None = None,
    writer: TranscriptWriter | None = None,
) -> SessionResult:
    if not isinstance(problem, str) or not problem.strip():
        raise ConfigError("problem", "empty problem text", "pass the problem as a non-empty string")
    sid = session_id or os.urandom(6).hex()
    s = _Session(team, problem, backend, sid, writer)
    s.check_context()
    if writer is not None:
        topo = team.topology
        writer.write(
            SessionHeader(
                session=sid,
                problem=problem,
                gold=gold,
                topology=str(topo.graph.get("name", "topology")),
                agents={a: topo.role_of(a) for a in topo.agents},
                rounds=team.rounds,
                inter_round=team.policy.name,
                decision=team.decision.name,
            )
        )
    result = await s.run(gold)
    if writer is not None:
        writer.write(result)
    return result


async def run_many(
    team: Team,
    problems: Sequence[str],
    backend: Backend,
    *,
    golds: Sequence[str | None] | None = None,
    session_ids: Sequence[str] | None = None,
    writer: TranscriptWriter | None = None,
    progress: bool = False,
) -> list[SessionResult]:
    """Every session at once; results in the order of ``problems``."""
    n = len(problems)
    golds = list(golds) if golds is not None else [None] * n
    ids = list(session_ids) if session_ids is not None else [os.urandom(6).hex() for _ in range(n)]
    if len(golds) != n or len(ids) != n:
        raise ConfigError(
            "golds", "golds and session_ids must match problems in length", "pass one per problem"
        )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="sessions", unit="session")

    async def one(i: int) -> SessionResult:
        r = await run_session(team, problems[i], backend, gold=golds[i], session_id=ids[i], writer=writer)
        if bar is not None:
            bar.update(1)
        return r

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        if bar is not None:
            bar.close()
