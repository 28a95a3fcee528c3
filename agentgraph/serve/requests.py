"""The chat-completion request a served team takes: OpenAI's own schema, checked strictly, and what
the team does with every field of it.

The schema is the ``openai`` package's ``CompletionCreateParams`` (kept current by OpenAI), validated
by pydantic in strict mode: ``"temperature": "0.5"`` or ``"n": true`` is a 400 naming the field, not
a value quietly coerced. The body is parsed by pydantic's JSON parser with a depth limit and without
``NaN``/``Infinity``, so no body — nested, truncated, mis-encoded — reaches the team unparsed.

Every field is honoured, accepted in the one value that asks for nothing (``"tool_choice": "none"``,
``"response_format": {"type": "text"}``, ``"frequency_penalty": 0``), or refused with a 400 that names
it and says what to do; a field of no schema is refused too. The README's "Serving a team" table lists
them (a test keeps it complete).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, get_type_hints

import pydantic_core
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from agentgraph.core.errors import AgentGraphError
from agentgraph.core.sampling import SamplingOverrides


class ApiError(AgentGraphError):
    """A request the server answers with an OpenAI-shaped error (status, message, param, code)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = dict(headers or {})

    def response_body(self) -> dict[str, Any]:
        kind = {
            401: "authentication_error",
            404: "not_found_error",
            429: "rate_limit_error",
            504: "timeout_error",
        }.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"message": self.message, "type": kind, "param": self.param, "code": self.code}


class AgentgraphOptions(TypedDict, total=False):
    stream_turns: bool


class ChatBody(CompletionCreateParamsBase, total=False):
    """OpenAI's request, with ``stream`` (its two variants merged) and our ``agentgraph`` options."""

    stream: bool | None
    top_k: int | None  # vLLM's extension, as `vllm serve` takes it
    agentgraph: AgentgraphOptions


#: what the team does with each honoured field (the README's table says the same)
HONOURED: dict[str, str] = {
    "model": "the team to run (GET /v1/models lists them)",
    "messages": "one user message: the problem (text, or text parts)",
    "stream": "the answer as chunks; with agentgraph.stream_turns every turn as it finishes",
    "stream_options": "include_usage: a last chunk with the whole team's usage",
    "temperature": "every agent's sampling",
    "top_p": "every agent's sampling",
    "top_k": "every agent's sampling (vLLM's extension)",
    "max_tokens": "every agent's turn length",
    "max_completion_tokens": "the newer name of max_tokens",
    "stop": "every agent's turn ends at them",
    "seed": "each agent samples from its own seed derived from it: the same seed repeats the session",
    "logprobs": "the log-probs of the deciding turn's answer tokens (tokens as token_id:N)",
    "top_logprobs": "0 only (the sampled token's log-prob)",
    "n": "1 only: a team gives one answer per request",
    "user": "recorded in the session's transcript header",
    "metadata": "recorded in the session's transcript header",
    "safety_identifier": "recorded in the session's transcript header",
    "agentgraph": "our options: stream_turns",
}

#: fields accepted only in the value that asks for nothing, with what to do instead
NEUTRAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "frequency_penalty": (lambda v: v == 0, "agents sample without penalties; drop it"),
    "presence_penalty": (lambda v: v == 0, "agents sample without penalties; drop it"),
    "logit_bias": (lambda v: not v, "a team's agents take no logit bias; drop it"),
    "response_format": (
        lambda v: v == {"type": "text"},
        "a team answers in text (its answer is in the agentgraph field); drop it",
    ),
    "tool_choice": (lambda v: v == "none", "a team calls no tools; drop it"),
    "function_call": (lambda v: v == "none", "a team calls no functions; drop it"),
    "parallel_tool_calls": (lambda v: True, ""),  # means nothing without tools, which are refused
    "modalities": (lambda v: list(v) == ["text"], "a team answers in text only"),
    "store": (lambda v: v is False, "served sessions are kept in the server's transcript (--out)"),
    "service_tier": (lambda v: v in ("auto", "default"), "there is one tier; drop it"),
}

#: fields refused whatever their value (null aside), with what to do instead
REFUSED: dict[str, str] = {
    "tools": "a team calls no tools; send the problem as a user message",
    "functions": "a team calls no functions; send the problem as a user message",
    "audio": "a team answers in text only",
    "prediction": "predicted outputs do not apply to a team's turns",
    "web_search_options": "a team does not search the web",
    "reasoning_effort": "give the team a thinking budget instead (agentgraph serve --thinking-budget)",
    "verbosity": "set the agents' turn length with max_tokens",
    "prompt_cache_key": "vLLM caches shared prefixes by itself; drop it",
    "prompt_cache_retention": "vLLM caches shared prefixes by itself; drop it",
    "prompt_cache_options": "vLLM caches shared prefixes by itself; drop it",
    "moderation": "a team does no moderation",
}


@dataclass(frozen=True)
class ChatRequest:
    """A checked request: the team's problem and what the client asked of it."""

    model: str
    problem: str
    stream: bool
    include_usage: bool
    stream_turns: bool
    sampling: SamplingOverrides | None
    logprobs: bool
    client: dict[str, object] | None


@cache
def _schema() -> tuple[TypeAdapter[ChatBody], frozenset[str]]:
    return TypeAdapter(ChatBody), frozenset(get_type_hints(ChatBody))


def fields() -> frozenset[str]:
    """Every top-level field the server knows (OpenAI's, vLLM's ``top_k`` and ``agentgraph``)."""
    return _schema()[1]


def _where(loc: tuple[int | str, ...], prefix: tuple[int | str, ...], data: Any) -> tuple[str, Any]:
    """The JSON path of a pydantic error: the parts of ``loc`` that index ``data`` (a union's branch
    names, e.g. ``ChatCompletionUserMessageParam``, are not part of the body)."""
    path: list[str] = [str(p) for p in prefix]
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            continue
        data = data[part]
        path.append(str(part))
    return ".".join(path), data


def _invalid(e: ValidationError, prefix: tuple[int | str, ...], data: Any) -> ApiError:
    errors = e.errors()
    field, value = _where(tuple(errors[0]["loc"]), prefix, data)
    field = field or "body"
    if len(errors) > 1:
        # a union of shapes (a message of any role, a string or a list): name the value, not every
        # branch's complaint
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return ApiError(400, f"{field}: {shown} is not valid here (OpenAI's chat-completions schema)", field)
    return ApiError(400, f"{field}: {errors[0]['msg']}", field)


def parse(raw: bytes) -> ChatRequest:
    """``raw`` as a checked chat request, or an :class:`ApiError` (400/404-free: the model name is
    checked by the caller, which knows the teams)."""
    try:
        body = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as e:  # depth, truncation, encoding, NaN: all parse errors
        raise ApiError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object (a chat completion request)")
    if "messages" not in body or body["messages"] in (None, []):
        raise ApiError(400, "messages: missing or empty (send at least one user message)", "messages")
    adapter, known = _schema()
    for key in body:
        if key not in known:
            raise ApiError(
                400, f"{key}: not a field of a chat completion request; drop it", key, "unknown_field"
            )
    try:
        checked = adapter.validate_python(body, strict=True)
    except ValidationError as e:
        raise _invalid(e, (), body) from None
    try:
        messages = list(checked["messages"])  # validated as it is read (an Iterable in the schema)
    except ValidationError as e:
        raise _invalid(e, ("messages",), body["messages"]) from None
    for key, value in body.items():
        if value is None or key in HONOURED:
            continue
        if key in NEUTRAL:
            ok, fix = NEUTRAL[key]
            if not ok(value):
                raise ApiError(400, f"{key}: {value!r} is not supported; {fix}", key, "unsupported_field")
        else:
            raise ApiError(400, f"{key}: not supported; {REFUSED[key]}", key, "unsupported_field")
    options = body.get("agentgraph") or {}
    if not isinstance(options, dict) or set(options) - {"stream_turns"}:
        raise ApiError(400, 'agentgraph: must be an object, e.g. {"stream_turns": true}', "agentgraph")
    return ChatRequest(
        model=body["model"],
        problem=problem_of(messages),
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        stream_turns=bool(options.get("stream_turns")),
        sampling=overrides(body),
        logprobs=bool(body.get("logprobs")),
        client={k: body[k] for k in ("user", "metadata", "safety_identifier") if body.get(k) is not None}
        or None,
    )


def problem_of(messages: list[Any]) -> str:
    """The one user message's text: a team answers one problem, with its own roles' system prompts,
    so other messages (a system prompt, an earlier conversation) would go unused — they are refused."""
    for i, m in enumerate(messages):
        if m.get("role") != "user":
            raise ApiError(
                400,
                f"messages.{i}.role: {m.get('role')!r} messages are not used by a team (its agents have "
                "their roles' system prompts); send the problem as one user message",
                f"messages.{i}.role",
            )
    if len(messages) > 1:  # none is refused before: "messages: missing or empty"
        raise ApiError(
            400,
            f"messages: {len(messages)} user messages; a team answers one problem: send one",
            "messages",
        )
    content = messages[0]["content"]
    if not isinstance(content, str):
        parts = list(content)
        for j, p in enumerate(parts):
            if p.get("type") != "text":
                raise ApiError(
                    400,
                    f"messages.0.content.{j}: {p.get('type')!r} parts are not supported (text only)",
                    f"messages.0.content.{j}",
                )
        content = "\n".join(p["text"] for p in parts)
    if not content.strip():
        raise ApiError(400, "messages.0.content: the user message has no text", "messages.0.content")
    return str(content)


def overrides(body: Mapping[str, Any]) -> SamplingOverrides | None:
    if body.get("n") not in (1, None):
        raise ApiError(400, "n: a team gives one answer per request; send n requests instead", "n")
    if body.get("top_logprobs") not in (0, None):
        raise ApiError(
            400,
            "top_logprobs: only the sampled token's log-prob is given; send 0 or drop it",
            "top_logprobs",
        )
    fields = {
        k: body[k] for k in ("temperature", "max_tokens", "top_p", "top_k", "seed") if body.get(k) is not None
    }
    if body.get("max_completion_tokens") is not None:
        fields["max_tokens"] = body["max_completion_tokens"]
    if (stop := body.get("stop")) is not None:
        fields["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    if body.get("logprobs"):
        fields["logprobs"] = True
    if not fields:
        return None
    try:
        return SamplingOverrides(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or next(iter(fields))
        raise ApiError(400, f"{field}: {err['msg']}", field) from None


__all__ = ["HONOURED", "NEUTRAL", "REFUSED", "ApiError", "ChatRequest", "fields", "parse"]
