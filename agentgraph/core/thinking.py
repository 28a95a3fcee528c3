r"""Thinking and conclusions: the two parts of a reasoning model's turn.

A reasoning model writes a *thinking* part (``<think>…</think>``, or whatever its chat template
marks) and then a *final* part. Transcripts keep both, with token counts for each; what other agents
read is chosen per team and per role (``share``: ``final`` — the default —, ``answer`` or
``full``); answers are extracted from the final part only, and a think block that never closed is
an unparseable turn, never a guessed answer.

Where the markers come from: :func:`detect` reads the model's chat template (a generation prompt
that already opens ``<think>``, as DeepSeek-R1 distills do; or a template/vocabulary that knows the
markers, as Qwen3 does); a team can name them explicitly (``think="<think>,</think>"``) or switch
them off (``think="none"``).

How a thinking turn runs (:mod:`agentgraph.engine.scheduler`): request 1 thinks until the model closes the
block (a stop on the close marker) or the thinking budget ends; request 2 continues from the exact
token ids of request 1 — after the forced conclusion (close marker + the role's cue, the s1 "budget
forcing") when the budget ran out — for a bounded number of answer tokens. Two requests make the
thinking/answer token split exact (no re-tokenizing); the second one's prompt is a prefix-cache hit.

Examples
--------
>>> fmt = ThinkFormat("<think>", "</think>", opened_by_template=True)
>>> split("I add 3 and 4.</think> So \\boxed{7}.", fmt)
(22, True)
>>> split("I add 3 and", fmt)  # the budget ran out inside the block: no final part
(11, False)
>>> split("\\boxed{7}", None)
(0, True)
>>> parse_think("<think>,</think>")
ThinkFormat(open='<think>', close='</think>', opened_by_template=False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentgraph.core.errors import ConfigError

Share = Literal["final", "answer", "full"]
SHARES: tuple[Share, ...] = ("final", "answer", "full")


@dataclass(frozen=True)
class ThinkFormat:
    """How a model marks its thinking. ``opened_by_template``: the generation prompt already opens
    the block, so a completion starts inside it."""

    open: str = "<think>"
    close: str = "</think>"
    opened_by_template: bool = False


def parse_think(spec: str | ThinkFormat | None) -> ThinkFormat | Literal["auto", "none"]:
    """``"auto"`` (detect from the template), ``"none"`` (no thinking) or ``"OPEN,CLOSE"``."""
    if isinstance(spec, ThinkFormat):
        return spec
    if spec is None or spec == "auto":
        return "auto"
    if spec == "none":
        return "none"
    open_, sep, close = spec.partition(",")
    if not sep or not open_.strip() or not close.strip() or "," in close:
        raise ConfigError("think", f"{spec!r} is not auto, none or OPEN,CLOSE", 'e.g. "<think>,</think>"')
    return ThinkFormat(open_.strip(), close.strip())


def split(text: str, fmt: ThinkFormat | None) -> tuple[int, bool]:
    """``(n, closed)``: ``text[:n]`` is the thinking part (markers included), ``text[n:]`` the final
    part; ``closed`` is False when a think block was opened and never closed."""
    if fmt is None:
        return 0, True
    i = text.find(fmt.close)
    if i >= 0:
        return i + len(fmt.close), True
    if fmt.opened_by_template or text.lstrip().startswith(fmt.open):
        return len(text), False
    return 0, True


def block_open(text: str, fmt: ThinkFormat) -> bool:
    """Whether a completion that starts with ``text`` is inside its think block."""
    return fmt.close not in text and (fmt.opened_by_template or fmt.open in text)


def conclusion(text_so_far: str, fmt: ThinkFormat, cue: str) -> str:
    """What budget forcing appends: close the block (opening it first if the model never did) and
    the role's cue for a final answer."""
    head = "" if block_open(text_so_far, fmt) else fmt.open
    sep = "" if text_so_far.endswith("\n") or not text_so_far else "\n"
    return f"{head}{sep}{fmt.close}\n\n{cue}"


def budget_for(budget: int | tuple[int, ...] | None, rnd: int) -> int | None:
    """The thinking budget of round ``rnd``: a tuple gives one per round, its last value repeating."""
    if budget is None or isinstance(budget, int):
        return budget
    return budget[min(rnd, len(budget) - 1)] if budget else None


def detect(tokenizer: Any, chat_template: str | None = None) -> ThinkFormat | None:
    """The think markers a model's chat template uses, or ``None`` when it has none."""
    probe = [{"role": "user", "content": "x"}]
    try:
        with_gen = tokenizer.apply_chat_template(
            probe, add_generation_prompt=True, tokenize=False, chat_template=chat_template
        )
        without = tokenizer.apply_chat_template(
            probe, add_generation_prompt=False, tokenize=False, chat_template=chat_template
        )
    except Exception as e:  # a tokenizer without a chat template cannot be run as an agent at all
        raise ConfigError(
            "model", f"the tokenizer has no usable chat template ({e})", "pass --chat-template"
        ) from None
    generation = (
        str(with_gen)[len(str(without)) :] if str(with_gen).startswith(str(without)) else str(with_gen)
    )
    template = chat_template or getattr(tokenizer, "chat_template", None) or ""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    for open_, close in (("<think>", "</think>"), ("<thinking>", "</thinking>")):
        if generation.rstrip().endswith(open_):
            return ThinkFormat(open_, close, opened_by_template=True)
        if close in str(template) or close in vocab:
            return ThinkFormat(open_, close, opened_by_template=False)
    return None


__all__ = [
    "SHARES",
    "Share",
    "ThinkFormat",
    "block_open",
    "budget_for",
    "conclusion",
    "detect",
    "parse_think",
    "split",
]
