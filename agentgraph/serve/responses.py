"""What a served team answers: the chat completion (or its chunks) of a finished session."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from agentgraph.core.messages import Turn
from agentgraph.engine.transcript import SessionResult
from agentgraph.serve.requests import ChatRequest


def answer_text(r: SessionResult) -> str:
    """The text of the turn that gave the team's answer, else ``\\boxed{answer}`` (or "")."""
    if r.answer is None:
        return ""
    turn = r.answer_turn()
    return turn.final.strip() if turn is not None else f"\\boxed{{{r.answer}}}"


def answer_logprobs(r: SessionResult) -> dict[str, Any] | None:
    """OpenAI's ``logprobs`` of the deciding turn's answer tokens (its thinking stays private), tokens
    named as vLLM's ``--return-tokens-as-token-ids`` names them; ``None`` when no single turn decided or
    its tokens were not all sampled (a conclusion forced by a thinking budget)."""
    turn = r.answer_turn()
    if turn is None or turn.logprobs is None or len(turn.logprobs) != len(turn.completion_token_ids):
        return None
    ids, lps = turn.completion_token_ids[turn.thinking_tokens :], turn.logprobs[turn.thinking_tokens :]
    content: list[dict[str, Any]] = [
        {"token": f"token_id:{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
        for i, lp in zip(ids, lps, strict=True)
    ]
    return {"content": content, "refusal": None}


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
        "wall_s": r.wall_s,  # the session's own seconds: latency minus this is the serving's cost
    }


def turn_event(t: Turn) -> dict[str, Any]:
    return {**t.brief(), "text": t.final}  # the final part only: thinking stays private


def respond(req: ChatRequest, r: SessionResult) -> Any:
    if not req.stream:
        return {
            "id": r.session,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_text(r)},
                    "logprobs": answer_logprobs(r) if req.logprobs else None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage_of(r),
            "agentgraph": details(r),
        }
    return StreamingResponse(final_events(req, r), media_type="text/event-stream")


async def final_events(req: ChatRequest, r: SessionResult) -> AsyncIterator[str]:
    """The answer as one content chunk, the finish chunk (with the session's details), the usage
    chunk when ``stream_options.include_usage`` asks for it, and ``[DONE]``."""
    content = answer_text(r)
    created = int(time.time())
    extra = details(r)
    usage = usage_of(r)

    def chunk(delta: dict[str, Any], finish: str | None, **more: Any) -> str:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if delta and req.logprobs:
            choice["logprobs"] = answer_logprobs(r)
        data = {
            "id": r.session,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "choices": [choice] if delta or finish else [],
            **more,
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": content}, None)
    yield chunk({}, "stop", agentgraph=extra)
    if req.include_usage:
        yield chunk({}, None, usage=usage)
    yield "data: [DONE]\n\n"


__all__ = ["answer_logprobs", "answer_text", "final_events", "respond", "turn_event"]
