"""A session: one team on one problem — its settings, requests, turns and result.

:meth:`Session.speak` is the one way a request is made (prompt fitted to the context, retries, the
turn parsed and recorded); how a session spends its turns is its team's strategy
(:class:`~agentgraph.engine.rounds.Rounds` unless the team names another), which only calls
``speak``, ``child`` and ``play``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from agentgraph.backends.base import Backend, Completion, GenerationRequest, RequestMeta, Served
from agentgraph.core.answers import extract, is_correct, parse_score
from agentgraph.core.errors import BackendError, ConfigError, RequestRejected, SessionFailed, SessionOverflow
from agentgraph.core.messages import Decision, Turn, TurnKind
from agentgraph.core.records import trusted
from agentgraph.core.thinking import ThinkFormat
from agentgraph.engine.accounting import account
from agentgraph.engine.generation import TurnOutput, fit, generate_turn, reserve, retry_plain
from agentgraph.engine.rounds import ROUNDS
from agentgraph.engine.transcript import RecordSink, SessionHeader, SessionResult, TurnRecord
from agentgraph.engine.voices import Voice, Voices
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import PeerView
from agentgraph.team.team import Team


class Session:
    """One team on one problem; built by :func:`prepare`, run by :func:`run`. Sessions of one
    ``prepare`` share ``voices`` (one team on one backend: each speaker resolved once)."""

    def __init__(
        self,
        team: Team,
        problem: str,
        backend: Backend,
        session: str,
        gold: str | None,
        voices: Voices | None = None,
    ) -> None:
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
        self.voices = Voices(team, backend) if voices is None else voices
        # whether its coroutines start eagerly: its requests finish at once (agentgraph.engine.eager)
        self.eager = self.voices.eager
        # a cascade's stages run as child sessions of one session: their rounds follow the earlier
        # stages' rounds in the transcript
        self.round_offset = 0
        # set by whoever cancels a served session (its client went away, its time ran out): the
        # session is then recorded as cancelled with this reason. Unset, a cancelled session leaves
        # no result, so a resumed evaluation runs it again.
        self.cancelled: str | None = None
        self.client: dict[str, object] | None = None  # what a serving client said of the request

    def view(self, model: str | None) -> tuple[Served, ThinkFormat | None]:
        """``model`` as the backend serves it, and its think markers."""
        return self.voices.view(model)

    def voice(self, agent: str, role: Role, kind: TurnKind) -> Voice:
        """The speaker's :class:`~agentgraph.engine.voices.Voice` on this session's backend."""
        return self.voices.voice(agent, role, kind)

    def request(
        self, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> GenerationRequest:
        return self._request(self.voice(agent, role, kind), agent, role, rnd, kind, peers)

    def _request(
        self, v: Voice, agent: str, role: Role, rnd: int, kind: TurnKind, peers: Sequence[PeerView]
    ) -> GenerationRequest:
        r = rnd + self.round_offset
        # positional, in field order: keywords cost a slotted dataclass twice as much (once a turn)
        return GenerationRequest(
            v.layout.messages(self.problem, peers),
            None,
            v.sampling,
            v.adapter,
            RequestMeta(self.session, agent, role.name, r, kind, self.problem),
            self.request_id(rnd, agent, 1, 1),
            v.model,
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
        c.round_offset = round_offset
        return c

    def resolve_models(self) -> None:
        """Every agent's model is served, with what its settings need (known once the backend
        started): think markers for a thinking budget, a tokenizer to force and measure it."""
        team = self.team
        for agent in team.agents:
            role = team.role(agent)
            model = team.model_of(agent, role)
            if self.backend.for_model(model) is None:
                raise ConfigError(
                    "model",
                    f"agent {agent} runs on {model!r}, which the {self.backend.name} backend does not serve",
                    "serve that model too (a Router member; the CLI's --role-model), or drop it",
                )
            served, think = self.view(model)
            if team.speaker(agent, role, "agent")[0].thinking_budget is None:
                continue
            if think is None:
                raise ConfigError(
                    "thinking_budget",
                    f"the chat template of {model or 'the model'} marks no thinking: a budget cannot be kept",
                    "name the markers (think: '<think>,</think>') or drop the budget",
                )
            if served.count_prompt_tokens(self.request(agent, role, 0, "agent", [])) is None:
                raise ConfigError(
                    "thinking_budget",
                    f"the {served.name} backend holds no tokenizer for {model or 'its model'}, so a "
                    "budget cannot be forced",
                    "give the backend the model's tokenizer (--tokenizer), or drop the budget",
                )

    def bounded(self) -> bool:
        """Whether any agent's model has a context limit (else :meth:`check_context` has nothing to
        measure, whatever the problem)."""
        team = self.team
        return any(
            self.voices.voice(a, team.role(a), "agent").served.max_context is not None
            for a in team.topology.agents
        )

    def check_context(self) -> None:
        team = self.team
        for agent in team.topology.agents:
            role = team.role(agent)
            v = self.voices.voice(agent, role, "agent")
            served, think, sampling = v.served, v.think, v.sampling
            limit = served.max_context
            if limit is None:
                continue
            room = max(reserve(sampling, r, think) for r in range(self.team.rounds))
            req = self.request(agent, role, 0, "agent", [])
            n = served.count_prompt_tokens(req)
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
        v = self.voices.voice(agent, role, kind)
        served, think = v.served, v.think
        r = rnd + self.round_offset
        tid = f"{self.session}:r{r}:{agent}"
        dropped: list[str] = []
        if served.max_context is None:  # nothing to measure: the request as it is
            req = self._request(v, agent, role, rnd, kind, peers)
        else:
            try:
                req, dropped = fit(
                    served,
                    lambda shown: self._request(v, agent, role, rnd, kind, shown),
                    peers,
                    reserve(v.sampling, rnd, think),
                    self.team.overflow == "truncate-peers",
                )
            except SessionOverflow as e:
                self.record(
                    Turn(
                        **self._who(tid, agent, role, r, kind),
                        **self._how(v, started),
                        read=[p.turn_id for p in peers],
                        error=f"SessionOverflow: {e}",
                    )
                )
                raise
        read = [p.turn_id for p in peers]
        if dropped:
            read = [i for i in read if i not in dropped]
        failures: list[str] = []
        retry = self.team.retry
        try:
            out: Completion | TurnOutput
            if think is None and retry.timeout_s is None:
                # most turns: one request, sent here; retries only once it failed
                try:
                    out, attempts = await self.backend.generate(req), 1
                except (BackendError, TimeoutError) as first:
                    out, attempts = await retry_plain(
                        self.backend,
                        req,
                        retry,
                        failures,
                        first,
                        lambda phase, n: self.request_id(rnd, agent, phase, n),
                    )
            else:
                out = await generate_turn(
                    self.backend,
                    served,
                    req,
                    role,
                    rnd,
                    think,
                    retry,
                    failures,
                    lambda phase, attempt: self.request_id(rnd, agent, phase, attempt),
                )
        except (BackendError, TimeoutError) as e:
            turn = Turn(
                **self._who(tid, agent, role, r, kind),
                **self._how(v, started),
                read=read,
                dropped_peers=dropped,
                error=f"{type(e).__name__}: {e}",
                latency_s=time.perf_counter() - self.t0 - started,
                attempts=max(1, len(failures)),
                failed_attempts=failures,
            )
            self.record(turn)
            if self.team.on_error == "raise":
                raise
            if isinstance(e, RequestRejected):  # it would be refused again: this session stops here
                raise SessionFailed(str(e)) from e
            return turn
        text = out.text
        if isinstance(out, TurnOutput):
            chars, closed, think_tokens, forced = (
                out.thinking_chars,
                out.thinking_closed,
                out.thinking_tokens,
                out.forced_tokens,
            )
            requests, attempts = max(1, out.requests), max(1, out.attempts)
        else:  # one request, no thinking
            chars, closed, think_tokens, forced, requests = 0, True, 0, 0, 1
        final = text[chars:] if closed else ""
        fmt = v.answer_format
        answer = extract(final) if fmt == "boxed" or (fmt == "step" and "\\boxed" in final) else None
        adapter = v.adapter
        # every field, in Turn's order: built without validating again (agentgraph.core.records)
        turn = trusted(
            Turn,
            {
                "id": tid,
                "session": self.session,
                "agent": agent,
                "role": role.name,
                "round": r,
                "kind": kind,
                "read": read,
                "text": text,
                "answer": answer,
                # a backend hands its lists over (agentgraph.backends.base.Completion): not copied
                "prompt_token_ids": out.prompt_token_ids,
                "completion_token_ids": out.token_ids,
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "requests": requests,
                "thinking_chars": chars,
                "thinking_closed": closed,
                "thinking_tokens": think_tokens,
                "forced_tokens": forced,
                "dropped_peers": dropped,
                "score": parse_score(final, *role.score_range) if fmt == "score" else None,
                "logprobs": out.logprobs,
                "finish_reason": out.finish_reason,
                "adapter": None if adapter is None else adapter.name,
                "model": v.model,
                "started_s": started,
                "latency_s": out.latency_s,
                "attempts": attempts,
                "failed_attempts": failures,
                "error": None,
            },
        )
        self.record(turn)
        return turn

    def _who(self, tid: str, agent: str, role: Role, r: int, kind: TurnKind) -> dict[str, Any]:
        """A turn's leading fields, in ``Turn``'s order."""
        s = self.session
        return {"id": tid, "session": s, "agent": agent, "role": role.name, "round": r, "kind": kind}

    @staticmethod
    def _how(v: Voice, started: float) -> dict[str, Any]:
        return {"adapter": v.adapter.name if v.adapter else None, "model": v.model, "started_s": started}

    def record(self, turn: Turn) -> None:
        self.turns.append(turn)
        if self.writer is not None:
            self.writer.write(TurnRecord(turn=turn))

    async def run(self, writer: RecordSink | None = None) -> SessionResult:
        """The team's strategy (rounds by default); header, turns and result go to ``writer`` as they
        happen."""
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
                    client=self.client,
                )
            )
        try:
            decision, rounds_run, stopped_early = await self.play()
        except SessionFailed as e:
            # this session cannot go on; the others of the run are not affected
            what = "context overflow" if isinstance(e, SessionOverflow) else "request rejected"
            decision = Decision(method="failed", answer=None, note=f"{what}: {e}")
            rounds_run, stopped_early = self.rounds_reached(), False
        except asyncio.CancelledError:
            if self.cancelled is not None and writer is not None:
                # recorded before the cancellation goes on (the backend aborts the in-flight requests)
                decision = Decision(method="cancelled", answer=None, note=self.cancelled)
                writer.write(self.result(decision, self.rounds_reached(), False))
            raise
        result = self.result(decision, rounds_run, stopped_early)
        if writer is not None:
            writer.write(result)
        return result

    def rounds_reached(self) -> int:
        """Rounds begun so far (a session that ended early: failed or cancelled)."""
        return 1 + max((t.round for t in self.turns), default=0)

    async def play(self) -> tuple[Decision, int, bool]:
        """The team's strategy (beam search, cascade) or its rounds and decision:
        ``(decision, rounds_run, stopped_early)``."""
        return await (self.team.strategy or ROUNDS).run(self)

    def result(self, decision: Decision, rounds_run: int, stopped_early: bool) -> SessionResult:
        total, by_agent, by_round, edges, by_model = account(self.turns)
        gold = self.gold
        # every field in order, from values made here: not validated again (agentgraph.core.records)
        return trusted(
            SessionResult,
            {
                "type": "result",
                "session": self.session,
                "problem": self.problem,
                "gold": gold,
                "answer": decision.answer,
                "correct": None if gold is None else is_correct(decision.answer, gold),
                "decision": decision,
                "rounds_run": rounds_run,
                "stopped_early": stopped_early,
                "usage": total,
                "usage_by_agent": by_agent,
                "usage_by_round": by_round,
                "usage_by_model": by_model,
                "tokens_by_edge": edges,
                "wall_s": time.perf_counter() - self.t0,
                "errors": sum(1 for t in self.turns if t.error is not None),
                "failure": decision.note if decision.method in ("failed", "cancelled") else None,
                "turns": list(self.turns),
            },
        )
