"""A team served as an OpenAI-compatible model (FastAPI; ``agentgraph serve`` runs it with uvicorn).

- ``GET /v1/models`` lists the served teams (name → its description).
- ``POST /v1/chat/completions``: the last user message is the problem; the response's content is
  the text of the turn that gave the team's answer (or ``\\boxed{ANSWER}`` when no single turn did),
  ``usage`` is the whole team's tokens (every turn of the session, exactly as the engine counted),
  and ``agentgraph`` carries the session id, the decision and the answers per round.
  ``stream: true`` sends the content as one chunk, then (with ``stream_options.include_usage``) the
  usage, then ``[DONE]``. With ``"agentgraph": {"stream_turns": true}`` in the body (the openai
  client's ``extra_body``) every turn is streamed as it finishes, before the answer: a chunk with no
  choices and an ``agentgraph_turn`` object. ``temperature`` and ``max_tokens`` override every
  agent's sampling; ``n`` other than 1 is refused (a team gives one answer per request; run it
  several times instead).
- Every request is a session on the shared backend, so concurrent requests' agents batch together;
  served sessions are appended to ``transcript`` (JSONL, as ``eval`` writes).
- Errors have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad
  request (invalid JSON, no messages, no user message, a non-chat payload, ``n`` > 1), 401 without
  the bearer key (when ``api_key`` is set — read by the CLI from ``AGENTGRAPH_API_KEY``, never
  logged), 404 for an unknown model or path, 413 for a body over ``max_body_bytes``, 429 when
  ``max_concurrency`` sessions are already running, 503 when the backend fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentgraph.backends.base import Backend
from agentgraph.core.errors import AgentGraphError, BackendError, ConfigError
from agentgraph.core.messages import Turn
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.engine import scheduler
from agentgraph.engine.session import Session
from agentgraph.engine.transcript import (
    RecordSink,
    SessionHeader,
    SessionResult,
    TranscriptWriter,
    TurnRecord,
)
from agentgraph.team.team import Team


class ApiError(AgentGraphError):
    """A request the server answers with an OpenAI-shaped error (status, message, param, code)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response_body(self) -> dict[str, Any]:
        kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "server_error"
        )
        return {"message": self.message, "type": kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.response_body()}, status_code=self.status)


def answer_text(r: SessionResult) -> str:
    """The text of the turn that gave the team's answer, else ``\\boxed{answer}`` (or "")."""
    if r.answer is None:
        return ""
    turn = r.answer_turn()
    return turn.final.strip() if turn is not None else f"\\boxed{{{r.answer}}}"


def problem_of(body: Any) -> str:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (a chat completion request)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: missing or empty (send at least one user message)", "messages")
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            if isinstance(content, str) and content.strip():
                return content
            raise ApiError(400, "messages: the last user message has no text", "messages")
    raise ApiError(400, "messages: no user message (the last user message is the problem)", "messages")


def overrides(body: dict[str, Any]) -> SamplingOverrides | None:
    n = body.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, "n: a team gives one answer per request; send n requests instead", "n")
    fields = {k: body[k] for k in ("temperature", "max_tokens", "top_p") if body.get(k) is not None}
    if body.get("max_completion_tokens") is not None:
        fields["max_tokens"] = body["max_completion_tokens"]
    if not fields:
        return None
    try:
        return SamplingOverrides(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or next(iter(fields))
        raise ApiError(400, f"{field}: {err['msg']}", field) from None


def create_app(
    teams: Mapping[str, Team],
    backend: Backend,
    *,
    transcript: str | Path | None = None,
    api_key: str | None = None,
    max_concurrency: int | None = None,
    max_body_bytes: int = 1 << 20,
) -> FastAPI:
    """The OpenAI-compatible app over ``teams`` on a started ``backend`` (the caller owns both)."""
    if not teams:
        raise ConfigError("teams", "nothing to serve", "name at least one team")
    writer = TranscriptWriter(transcript, durable=True) if transcript else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if writer is None:
            yield
            return
        with writer:  # closed when the server shuts down; every record is already fsync'ed
            yield

    app = FastAPI(title="agentgraph", docs_url=None, redoc_url=None, lifespan=lifespan)
    running = 0
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return e.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return ApiError(e.status_code, str(e.detail)).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        return ApiError(400, str(e).splitlines()[0]).response()

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return ApiError(401, "missing or wrong API key (Authorization: Bearer …)").response()
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body_bytes:
            return ApiError(413, f"the body is over {max_body_bytes} bytes").response()
        return await call_next(request)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "agentgraph",
                "team": t.describe(),
            }
            for name, t in teams.items()
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        nonlocal running
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise ApiError(413, f"the body is over {max_body_bytes} bytes")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the body is not valid JSON") from None
        problem = problem_of(body)
        name = body.get("model")
        if name not in teams:
            raise ApiError(
                404, f"model {name!r} is not served (GET /v1/models lists them)", "model", "model_not_found"
            )
        team = teams[str(name)]
        if (extra := overrides(body)) is not None:
            team = team.replace(sampling=extra.over(team.sampling))
        if max_concurrency is not None and running >= max_concurrency:
            raise ApiError(
                429, f"{running} sessions are running (the limit is {max_concurrency}); retry later"
            )
        session = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        try:
            [s] = scheduler.prepare(team, [problem], backend, session_ids=[session])
        except ConfigError as e:
            raise ApiError(400, str(e), e.field) from None
        options = body.get("agentgraph") or {}
        if not isinstance(options, dict):
            raise ApiError(400, 'agentgraph: must be an object, e.g. {"stream_turns": true}', "agentgraph")
        turns = bool(body.get("stream")) and bool(options.get("stream_turns"))
        if turns:
            return stream_turns(str(name), s, writer, body)
        running += 1
        try:
            result = await run_session(s, writer)
        finally:
            running -= 1
        return respond(str(name), result, body)

    def stream_turns(name: str, s: Session, sink: TranscriptWriter | None, body: dict[str, Any]) -> Any:
        """Turn events as they happen, then the answer: each finished turn is a chunk with no choices
        and an ``agentgraph_turn`` object (agent, round, kind, answer, score, tokens, text)."""
        nonlocal running
        queue: asyncio.Queue[Turn | None] = asyncio.Queue()
        tee = Tee(sink, queue)
        running += 1

        async def events() -> AsyncIterator[str]:
            nonlocal running
            task = asyncio.ensure_future(run_session(s, tee))
            task.add_done_callback(lambda _: queue.put_nowait(None))
            try:
                while (turn := await queue.get()) is not None:
                    event = {
                        "id": s.session,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": name,
                        "choices": [],
                        "agentgraph_turn": turn_event(turn),
                    }
                    yield f"data: {json.dumps(event)}\n\n"
                try:
                    result = task.result()
                except ApiError as e:
                    yield f"data: {json.dumps({'error': e.response_body()})}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                async for line in final_events(name, result, body):
                    yield line
            finally:
                running -= 1
                if not task.done():  # the client went away: stop the session's requests
                    task.cancel()

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def usage_of(r: SessionResult) -> dict[str, int]:
    u = r.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def details(r: SessionResult) -> dict[str, Any]:
    """The ``agentgraph`` field of a response: the session, its decision and answers per round."""
    return {
        "session": r.session,
        "answer": r.answer,
        "decision": r.decision.model_dump(),
        "answers_by_round": {rnd: r.answers(rnd) for rnd in range(r.rounds_run)},
        "requests": r.usage.requests,
        "errors": r.errors,
    }


class Tee:
    """A record sink that writes to the transcript and queues each turn for a stream."""

    def __init__(self, sink: TranscriptWriter | None, queue: asyncio.Queue[Turn | None]) -> None:
        self.sink, self.queue = sink, queue

    def write(self, record: SessionHeader | TurnRecord | SessionResult) -> None:
        if self.sink is not None:
            self.sink.write(record)
        if isinstance(record, TurnRecord):
            self.queue.put_nowait(record.turn)


def turn_event(t: Turn) -> dict[str, Any]:
    return {**t.brief(), "text": t.final}  # the final part only: thinking stays private


async def run_session(s: Session, sink: RecordSink | None) -> SessionResult:
    try:
        result = await s.run(sink)
    except BackendError as e:
        raise ApiError(503, f"the engine failed: {e}") from None
    if result.turns and all(not t.ok for t in result.turns):
        raise ApiError(503, f"every request of the session failed: {result.turns[-1].error}")
    return result


def respond(model: str, r: SessionResult, body: dict[str, Any]) -> Any:
    if not body.get("stream"):
        return {
            "id": r.session,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_text(r)},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage_of(r),
            "agentgraph": details(r),
        }
    return StreamingResponse(final_events(model, r, body), media_type="text/event-stream")


async def final_events(model: str, r: SessionResult, body: dict[str, Any]) -> AsyncIterator[str]:
    """The answer as one content chunk, the finish chunk (with the session's details), the usage
    chunk when ``stream_options.include_usage`` asks for it, and ``[DONE]``."""
    content = answer_text(r)
    created = int(time.time())
    extra = details(r)
    usage = usage_of(r)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None, **more: Any) -> str:
        data = {
            "id": r.session,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else [],
            **more,
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": content}, None)
    yield chunk({}, "stop", agentgraph=extra)
    if include_usage:
        yield chunk({}, None, usage=usage)
    yield "data: [DONE]\n\n"


__all__ = ["ApiError", "answer_text", "create_app"]
