"""Transcripts: the full record of sessions, streamed to JSONL as they happen.

A JSONL file holds records of three types, each one line, flushed as soon as it exists:
``session`` (problem, topology, settings), ``turn`` (one :class:`~agentgraph.core.messages.Turn`) and
``result`` (the decision and accounting). Many sessions may interleave in one file (``solve_many``);
:func:`load` regroups them by session id. Writing and loading round-trips exactly.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agentgraph.core.answers import answer_key
from agentgraph.core.messages import Decision, Turn, Usage


class SessionHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["session"] = "session"
    session: str
    problem: str
    gold: str | None = None
    topology: str
    agents: dict[str, str] = Field(description="agent → role")
    rounds: int
    inter_round: str
    decision: str
    client: dict[str, object] | None = Field(
        None, description="what a serving client said of the request (user, metadata); None: not served"
    )


class TurnRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["turn"] = "turn"
    turn: Turn


class SessionResult(BaseModel):
    """One team on one problem: the decision, every turn, and exact accounting."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["result"] = "result"
    session: str
    problem: str
    gold: str | None = None
    answer: str | None
    correct: bool | None = None
    decision: Decision
    rounds_run: int
    stopped_early: bool = False
    usage: Usage
    usage_by_agent: dict[str, Usage]
    usage_by_round: dict[int, Usage]
    usage_by_model: dict[str, Usage] = Field(
        default_factory=dict, description="model → usage ('default': the backend's default model)"
    )
    tokens_by_edge: dict[str, int] = Field(
        description="'u->v' (kind): completion tokens carried along the edge"
    )
    wall_s: float
    errors: int = 0
    failure: str | None = Field(None, description="why the session ended without a decision (overflow)")
    turns: list[Turn] = Field(default_factory=list)

    def agent_turns(self, round: int | None = None) -> list[Turn]:
        """The agent turns (not summaries, judges or grades) of ``round`` (default: the last run)."""
        r = self.rounds_run - 1 if round is None else round
        return [t for t in self.turns if t.kind == "agent" and t.round == r]

    def answers(self, round: int | None = None) -> dict[str, str | None]:
        """Agent → parsed answer in ``round`` (default: the last round run)."""
        return dict(sorted((t.agent, t.answer) for t in self.agent_turns(round)))

    def answer_turn(self) -> Turn | None:
        """The last-round agent turn that carries the team's answer: the decider's when the rule names
        one (``chain_tail``, ``tree_root``) and it gave that answer, else the last that gave it;
        ``None`` when no agent turn of the last round did (a judge's own answer, no answer)."""
        key = answer_key(self.answer)
        if key is None:
            return None
        agreeing = [t for t in self.agent_turns() if answer_key(t.answer) == key]
        mine = [t for t in agreeing if t.agent == self.decision.decider]
        pick = mine or agreeing
        return pick[-1] if pick else None


Record = Annotated[SessionHeader | TurnRecord | SessionResult, Field(discriminator="type")]
_RECORD: TypeAdapter[SessionHeader | TurnRecord | SessionResult] = TypeAdapter(Record)


class RecordSink(Protocol):
    """Where a session sends its records as they happen (a :class:`TranscriptWriter`, or a server's
    per-request stream of turn events)."""

    def write(self, record: SessionHeader | TurnRecord | SessionResult) -> None: ...


class TranscriptWriter:
    """Append-only JSONL writer; each record is flushed (and fsync'ed with ``durable=True``).

    ``group_commit=True`` (with ``durable``) moves the fsync out of :meth:`write` into
    :meth:`commit`, which a server awaits before it acknowledges a session: one fsync, run off the
    event loop, covers every record written before it, so concurrent sessions share it and a
    session's header and turns cost no fsync of their own. What a crash can lose is then only what no
    client was told is done.
    """

    def __init__(self, path: str | Path, *, durable: bool = False, group_commit: bool = False) -> None:
        if group_commit and not durable:
            raise ValueError("group_commit needs durable=True (it decides when the fsync happens)")
        self.path = Path(path)
        self.durable = durable
        self.group_commit = group_commit
        self._fh: IO[str] | None = None
        self._written = 0  # records written (and flushed to the OS)
        self._synced = 0  # records known to be on disk
        self._sync_lock: asyncio.Lock | None = None

    def __enter__(self) -> TranscriptWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._fh = self.path.open("a", encoding="utf-8")
        return self

    def _drop_torn_tail(self) -> None:
        """A crash mid-write leaves a partial last line; cut it so appends start on a clean line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            fh.truncate(data.rfind(b"\n") + 1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            if self.durable and self._synced < self._written:  # group commit: what no one awaited yet
                os.fsync(self._fh.fileno())
                self._synced = self._written
            self._fh.close()
            self._fh = None

    def write(self, record: SessionHeader | TurnRecord | SessionResult) -> None:
        if self._fh is None:
            self.__enter__()
        assert self._fh is not None
        # the result repeats its turns in memory; on disk they are already there as turn records
        if isinstance(record, SessionResult):
            line = record.model_dump_json(exclude={"turns"})
        elif isinstance(record, SessionHeader) and record.client is None:
            line = record.model_dump_json(exclude={"client"})  # unserved sessions' lines stay as they were
        else:
            line = record.model_dump_json()
        self._fh.write(line + "\n")
        self._fh.flush()
        self._written += 1
        if self.durable and not self.group_commit:
            os.fsync(self._fh.fileno())
            self._synced = self._written

    async def commit(self) -> None:
        """Return once every record written so far is on disk (a no-op unless ``group_commit``).

        Callers queue on one lock; whoever holds it fsyncs everything written up to then, so the
        callers behind it whose records that covered return without a second fsync.
        """
        if not self.group_commit or self._synced >= self._written:
            return
        want = self._written
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            if self._synced >= want or self._fh is None:
                return
            covered = self._written
            await asyncio.to_thread(os.fsync, self._fh.fileno())
            self._synced = max(self._synced, covered)


class SessionTranscript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: SessionHeader
    turns: list[Turn]
    result: SessionResult | None = None


def load(path: str | Path) -> dict[str, SessionTranscript]:
    """Read a JSONL transcript back, grouped by session (in file order). A torn last line — the
    trace of a crash mid-write — is ignored; any other bad line raises."""
    headers: dict[str, SessionHeader] = {}
    turns: dict[str, list[Turn]] = {}
    results: dict[str, SessionResult] = {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = _RECORD.validate_json(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise
        if isinstance(rec, SessionHeader):
            # a session re-run after a crash starts with a new header: its partial turns are superseded
            headers[rec.session] = rec
            turns[rec.session] = []
            results.pop(rec.session, None)
        elif isinstance(rec, TurnRecord):
            turns.setdefault(rec.turn.session, []).append(rec.turn)
        else:
            results[rec.session] = rec
    out: dict[str, SessionTranscript] = {}
    for sid, h in headers.items():
        res = results.get(sid)
        if res is not None:
            res = res.model_copy(update={"turns": list(turns[sid])})
        out[sid] = SessionTranscript(header=h, turns=turns[sid], result=res)
    return out
