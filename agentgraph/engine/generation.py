"""One turn's requests: retries, the two phases of a thinking turn, and fitting the context.

- :func:`fit` measures a prompt before it is sent. A prompt fits when one new token fits — or, with
  a thinking budget, when the budget and the answer tokens fit. A later-round prompt that does not
  fit loses peer messages (oldest round first, then the longest; the reader's own earlier answer
  last) under the team's ``truncate-peers`` rule, and the dropped turn ids are recorded; under
  ``fail-session``, or when even no peers would fit, :class:`SessionOverflow` ends that session only.
- :func:`generate_turn` sends the turn: one request for a model that does not think; for one that
  does, request 1 thinks (stop on the close marker, at most the budget) and request 2 continues from
  request 1's exact token ids — after a forced conclusion when the budget ran out — so the split of
  thinking and answer tokens is exact (see :mod:`agentgraph.core.thinking`). Each request is retried
  under the team's :class:`~agentgraph.core.retry.RetryPolicy` with a fresh request id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentgraph.backends.base import Backend, Completion, GenerationRequest, Served
from agentgraph.core.errors import RequestRejected, SessionOverflow
from agentgraph.core.retry import RetryPolicy, call_with_retries, first_failed, retry_after_first
from agentgraph.core.sampling import Sampling, SamplingOverrides
from agentgraph.core.thinking import ThinkFormat, budget_for, conclusion, split
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import PeerView


def reserve(sampling: Sampling, rnd: int, think: ThinkFormat | None) -> int:
    """New tokens a prompt must leave room for."""
    budget = budget_for(sampling.thinking_budget, rnd) if think is not None else None
    return 1 if budget is None else budget + sampling.answer_tokens


def fit(
    backend: Served,
    build: Callable[[Sequence[PeerView]], GenerationRequest],
    peers: Sequence[PeerView],
    room: int,
    truncate: bool,
) -> tuple[GenerationRequest, list[str]]:
    """The request for ``peers``, or for as many as fit; and the ids of the peers left out."""
    req = build(peers)
    limit = backend.max_context
    if limit is None:
        return req, []
    n = backend.count_prompt_tokens(req)
    if n is None or n + room <= limit:
        return req, []
    if not truncate:
        raise SessionOverflow(f"a prompt of {n} tokens leaves no room for {room} new ones in {limit}")
    # oldest round first, then the longest text; the reader's own earlier answer goes last
    order = sorted(
        range(len(peers)), key=lambda i: (peers[i].how == "own", peers[i].round, -len(peers[i].text))
    )
    dropped: set[int] = set()
    for i in order:
        dropped.add(i)
        kept = [p for j, p in enumerate(peers) if j not in dropped]
        req = build(kept)
        n = backend.count_prompt_tokens(req) or 0
        if n + room <= limit:
            return req, [peers[j].turn_id for j in sorted(dropped)]
    raise SessionOverflow(f"the prompt is {n} tokens without any peer text; the context is {limit}")


@dataclass
class TurnOutput:
    """What the engine produced for one turn, over its one or two requests."""

    text: str = ""
    prompt_token_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    attempts: int = 0
    finish_reason: str | None = None
    logprobs: list[float] | None = None
    latency_s: float = 0.0
    thinking_chars: int = 0
    thinking_closed: bool = True
    thinking_tokens: int = 0
    forced_tokens: int = 0

    def add(self, c: Completion) -> None:
        if not self.requests:
            self.prompt_token_ids = c.prompt_token_ids
            self.logprobs = c.logprobs
        elif self.logprobs is not None and c.logprobs is not None:
            self.logprobs = self.logprobs + c.logprobs
        else:
            self.logprobs = None
        self.text += c.text
        self.token_ids = self.token_ids + c.token_ids
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.requests += 1
        self.finish_reason = c.finish_reason
        self.latency_s += c.latency_s


async def generate_turn(
    backend: Backend,
    served: Served,
    req: GenerationRequest,
    role: Role,
    rnd: int,
    think: ThinkFormat | None,
    retry: RetryPolicy,
    failures: list[str],
    request_id: Callable[[int, int], str],
) -> TurnOutput:
    """Send a turn's requests (see the module docstring) through ``backend``; ``served`` is the
    request's model as the backend serves it (its tokenizer writes a forced conclusion).
    ``request_id(phase, attempt)`` names each attempt; failed attempts are appended to ``failures``."""
    out = TurnOutput()

    async def send(r: GenerationRequest, phase: int) -> Completion:
        tries = 0

        async def attempt() -> Completion:
            nonlocal tries
            tries += 1
            rid = request_id(phase, tries)
            return await backend.generate(
                r if rid == r.request_id else dataclasses.replace(r, request_id=rid)
            )

        try:
            return await call_with_retries(retry, attempt, failures)
        finally:
            out.attempts += tries

    s = req.sampling
    if think is None:
        out.add(await send(req, 1))
        return out
    budget = budget_for(s.thinking_budget, rnd)
    if budget != 0:
        first = dataclasses.replace(
            req,
            sampling=s.merged(
                SamplingOverrides(
                    max_tokens=s.max_tokens if budget is None else budget,
                    stop=(think.close, *s.stop),
                    include_stop=True,
                )
            ),
        )
        out.add(await send(first, 1))
        out.thinking_tokens = out.completion_tokens
    else:
        out.prompt_token_ids = list(req.prompt_token_ids or ()) or _prompt_ids(served, req)
    concluded = think.close in out.text
    forced = ""
    if concluded:
        room = s.answer_tokens if budget is not None else s.max_tokens - out.completion_tokens
    elif budget is not None:
        forced = conclusion(out.text, think, role.conclude_cue)
        room = s.answer_tokens
    else:
        room = 0  # no budget and the model never concluded: an unfinished turn, not a guess
    if room > 0:
        if not out.prompt_token_ids:
            raise RequestRejected(
                "think",
                f"the {served.name} backend reported no prompt token ids to continue a thinking turn from",
                "serve with vLLM, or set think: none",
            )
        forced_ids = served.encode(forced) if forced else []
        out.forced_tokens = len(forced_ids)
        if forced:
            out.text += forced
            out.token_ids = out.token_ids + forced_ids
            out.logprobs = None  # forced tokens were not sampled: no log-probs to give them
        second = dataclasses.replace(
            req,
            prompt_token_ids=tuple(out.prompt_token_ids + out.token_ids),
            assistant_prefix=out.text,
            sampling=s.merged(SamplingOverrides(max_tokens=room)),
        )
        out.add(await send(second, 2))
    out.thinking_chars, out.thinking_closed = split(out.text, think)
    return out


async def retry_plain(
    backend: Backend,
    req: GenerationRequest,
    retry: RetryPolicy,
    failures: list[str],
    error: BaseException,
    request_id: Callable[[int, int], str],
) -> tuple[Completion, int]:
    """The rest of a turn that does not think, under no per-attempt time limit, whose first request
    (sent by the caller: ``await backend.generate(req)``) failed with ``error``: ``(completion,
    attempts)``, or ``error`` again when the policy does not retry it. What :func:`generate_turn`
    does for such a turn, without its bookkeeping layers (a :class:`TurnOutput`, three closures,
    four coroutine frames): most turns are this one and most first requests succeed, and on a fast
    backend those layers were a sixth of a turn (bench/scheduler.py)."""
    if not first_failed(retry, error, failures):
        raise error
    tries = 1

    async def again() -> Completion:
        nonlocal tries
        tries += 1
        return await backend.generate(dataclasses.replace(req, request_id=request_id(1, tries)))

    return await retry_after_first(retry, again, failures), tries


def _prompt_ids(backend: Served, req: GenerationRequest) -> list[int]:
    ids = backend.prompt_ids(req)
    if ids is None:
        raise RequestRejected(
            "thinking_budget", f"the {backend.name} backend cannot render prompt token ids", "use vllm"
        )
    return ids
