"""A team served as an OpenAI-compatible model (FastAPI; ``agentgraph serve`` runs it with uvicorn).

- ``GET /v1/models`` lists the served teams (name → its description).
- ``POST /v1/chat/completions``: the one user message is the problem (the request is checked and
  each field honoured or refused by :mod:`~agentgraph.serve.requests`); the response's content is
  the text of the turn that gave the team's answer (or ``\\boxed{ANSWER}`` when no single turn did),
  ``usage`` is the whole team's tokens (every turn of the session, exactly as the engine counted),
  and ``agentgraph`` carries the session id, the decision and the answers per round
  (:mod:`~agentgraph.serve.responses`). ``stream: true`` sends the content as one chunk, then (with
  ``stream_options.include_usage``) the usage, then ``[DONE]``. With ``"agentgraph":
  {"stream_turns": true}`` every turn is streamed as it finishes, before the answer: a chunk with
  no choices and an ``agentgraph_turn`` object.
- ``GET /health``: the sessions running and the requests the backend holds now.
- Every request is a session on the shared backend, so concurrent requests' agents batch together;
  served sessions are appended to ``transcript`` (JSONL, as ``eval`` writes). A client that goes
  away (streaming or not) cancels its session — the backend aborts its requests — and the session is
  recorded as ``cancelled`` with the reason; so is one over ``request_timeout`` (answered 504).
- Errors have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 for a body
  that does not parse or does not fit the schema, 401 without the bearer key (when ``api_key`` is
  set — read by the CLI from ``AGENTGRAPH_API_KEY``, never logged), 404 for an unknown model or
  path, 413 for a body over ``max_body_bytes``, 429 (with ``Retry-After``, the median of recent
  sessions' seconds) when ``max_concurrency`` sessions are already running, 503 when the backend
  fails, 504 over the timeout; a bug of ours is a logged 500 and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import statistics
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentgraph.backends.base import Backend
from agentgraph.core.errors import BackendError, ConfigError
from agentgraph.core.messages import Turn
from agentgraph.engine import scheduler
from agentgraph.engine.session import Session
from agentgraph.engine.transcript import (
    RecordSink,
    SessionHeader,
    SessionResult,
    TranscriptWriter,
    TurnRecord,
)
from agentgraph.serve.requests import ApiError, ChatRequest, parse
from agentgraph.serve.responses import answer_text, final_events, respond, turn_event
from agentgraph.team.team import Team

log = logging.getLogger(__name__)


def create_app(
    teams: Mapping[str, Team],
    backend: Backend,
    *,
    transcript: str | Path | None = None,
    api_key: str | None = None,
    max_concurrency: int | None = None,
    max_body_bytes: int = 1 << 20,
    request_timeout: float | None = None,
) -> FastAPI:
    """The OpenAI-compatible app over ``teams`` on a started ``backend`` (the caller owns both)."""
    if not teams:
        raise ConfigError("teams", "nothing to serve", "name at least one team")
    if request_timeout is not None and request_timeout <= 0:
        raise ConfigError("request_timeout", f"{request_timeout} ≤ 0", "give seconds > 0, or no limit")
    # group commit: a session is fsync'ed (with whatever else was written meanwhile) just before it is
    # answered, so an acknowledged completion is on disk and concurrent sessions share one fsync
    writer = TranscriptWriter(transcript, durable=True, group_commit=True) if transcript else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if writer is None:
            yield
            return
        with writer:  # closed (and the records no answer waited for fsync'ed) when the server stops
            yield

    app = FastAPI(title="agentgraph", docs_url=None, redoc_url=None, lifespan=lifespan)
    running = 0
    created = int(time.time())
    recent: deque[float] = deque(maxlen=32)  # recent sessions' seconds: a 429's Retry-After

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(ApiError(e.status_code, str(e.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        return error_response(ApiError(400, str(e).splitlines()[0]))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:
        # a bug of ours: a 500 in OpenAI's shape, logged with its traceback; the server goes on
        log.exception("unexpected error on %s", request.url.path)
        return error_response(ApiError(500, f"internal error ({type(e).__name__}); see the server log"))

    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes)

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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Sessions running and the requests the backend holds now (``None``: it cannot tell)."""
        held = getattr(backend, "in_flight", None)
        return {
            "status": "ok",
            "sessions_running": running,
            "requests_in_flight": held if isinstance(held, int) else None,
        }

    timed_out = f"timed out after {request_timeout:g} s (--request-timeout)" if request_timeout else ""

    def timeout_error() -> ApiError:
        return ApiError(504, f"the team did not finish within {request_timeout:g} s", code="timeout")

    def retry_after() -> str:
        return str(max(1, math.ceil(statistics.median(recent)))) if recent else "1"

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        nonlocal running
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise ApiError(413, f"the body is over {max_body_bytes} bytes")
        req = parse(raw)
        if req.model not in teams:
            raise ApiError(
                404,
                f"model {req.model!r} is not served (GET /v1/models lists them)",
                "model",
                "model_not_found",
            )
        team = teams[req.model]
        if req.sampling is not None:
            team = team.replace(sampling=req.sampling.over(team.sampling))
        if max_concurrency is not None and running >= max_concurrency:
            raise ApiError(
                429,
                f"{running} sessions are running (the limit is {max_concurrency}); retry later",
                headers={"Retry-After": retry_after()},
            )
        session = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        try:
            [s] = scheduler.prepare(team, [req.problem], backend, session_ids=[session])
        except ConfigError as e:
            raise ApiError(400, str(e), e.field) from None
        s.client = req.client
        if req.stream and req.stream_turns:
            return stream_turns(req, s)
        running += 1
        try:
            result = await supervised(s, writer, request)
        finally:
            running -= 1
        await answered(result)
        return respond(req, result)

    async def answered(result: SessionResult) -> None:
        """Before a session's answer goes out: its time counts toward Retry-After, and its records
        are on disk (the group commit), so an acknowledged completion survives a crash."""
        recent.append(result.wall_s)
        if writer is not None:
            await writer.commit()

    async def supervised(s: Session, sink: RecordSink | None, request: Request) -> SessionResult:
        """The session, cancelled (and recorded as cancelled) when its client goes away or its time
        runs out."""
        task = asyncio.ensure_future(run_session(s, sink))
        gone = asyncio.ensure_future(disconnected(request))
        try:
            done, _ = await asyncio.wait({task, gone}, timeout=request_timeout, return_when="FIRST_COMPLETED")
        except asyncio.CancelledError:
            await cancel(s, task, "the server stopped the request")
            raise
        finally:
            gone.cancel()
        if task in done:
            return task.result()
        if gone in done:
            await cancel(s, task, DISCONNECTED)
            raise ApiError(499, DISCONNECTED)  # nobody reads it: the record is what counts
        await cancel(s, task, timed_out)
        raise timeout_error()

    def stream_turns(req: ChatRequest, s: Session) -> Any:
        """Turn events as they happen, then the answer: each finished turn is a chunk with no choices
        and an ``agentgraph_turn`` object (agent, round, kind, answer, score, tokens, text)."""
        nonlocal running
        queue: asyncio.Queue[Turn | None] = asyncio.Queue()
        tee = Tee(writer, queue)
        running += 1
        deadline = None if request_timeout is None else time.monotonic() + request_timeout

        async def events() -> AsyncIterator[str]:
            nonlocal running
            task = asyncio.ensure_future(run_session(s, tee))
            task.add_done_callback(lambda _: queue.put_nowait(None))
            try:
                while True:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        turn = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        await cancel(s, task, timed_out)
                        for line in error_events(timeout_error()):
                            yield line
                        return
                    if turn is None:
                        break
                    event = {
                        "id": s.session,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": req.model,
                        "choices": [],
                        "agentgraph_turn": turn_event(turn),
                    }
                    yield f"data: {json.dumps(event)}\n\n"
                try:
                    result = task.result()
                except ApiError as e:
                    for line in error_events(e):
                        yield line
                    return
                await answered(result)
                async for line in final_events(req, result):
                    yield line
            finally:
                running -= 1
                if not task.done():  # the client went away mid-stream: stop and record the session
                    s.cancelled = DISCONNECTED  # recorded when the task next runs (no await here)
                    task.cancel()

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


DISCONNECTED = "the client disconnected"


class Guard:
    """The bearer key and the body-size limit, checked before anything reads the body.

    A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    wraps every request in a task group and memory streams, which cost more per completion than the
    rest of the server's own work (measured in ``bench/serve.py``).
    """

    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes
        self.expected = f"Bearer {api_key}".encode() if api_key is not None else b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(dict(scope["headers"]))
            if refusal is not None:
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: dict[bytes, bytes]) -> ApiError | None:
        given = headers.get(b"authorization", b"")
        if self.api_key is not None and not hmac.compare_digest(given, self.expected):
            return ApiError(401, "missing or wrong API key (Authorization: Bearer …)")
        size = headers.get(b"content-length", b"")
        if size.isdigit() and int(size) > self.max_body_bytes:
            return ApiError(413, f"the body is over {self.max_body_bytes} bytes")
        return None


def error_events(e: ApiError) -> tuple[str, str]:
    """A stream's end on an error: the error in OpenAI's shape, then ``[DONE]``."""
    return f"data: {json.dumps({'error': e.response_body()})}\n\n", "data: [DONE]\n\n"


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse({"error": e.response_body()}, status_code=e.status, headers=e.headers)


async def disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body is already read, so the next ASGI message is
    the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel(s: Session, task: asyncio.Future[SessionResult], why: str) -> None:
    """Cancel a running session: its requests are aborted in the backend and the session is recorded
    as cancelled with ``why``."""
    s.cancelled = why
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task


class Tee:
    """A record sink that writes to the transcript and queues each turn for a stream."""

    def __init__(self, sink: TranscriptWriter | None, queue: asyncio.Queue[Turn | None]) -> None:
        self.sink, self.queue = sink, queue

    def write(self, record: SessionHeader | TurnRecord | SessionResult) -> None:
        if self.sink is not None:
            self.sink.write(record)
        if isinstance(record, TurnRecord):
            self.queue.put_nowait(record.turn)


async def run_session(s: Session, sink: RecordSink | None) -> SessionResult:
    try:
        result = await s.run(sink)
    except BackendError as e:
        raise ApiError(503, f"the engine failed: {e}") from None
    if result.turns and all(not t.ok for t in result.turns):
        raise ApiError(503, f"every request of the session failed: {result.turns[-1].error}")
    return result


__all__ = ["ApiError", "answer_text", "create_app"]
