"""Answer extraction and verification, with ``math-verify``.

- ``extract(text)`` finds the final answer in a completion (``\\boxed{}`` first, then math-verify's
  anchor-free expression extraction, e.g. the last number). It returns ``None`` when nothing parses;
  ``None`` is always scored wrong — never right, unlike the reference debate code.
- ``is_correct(pred, gold)`` parses the gold answer first and verifies with math-verify.
- Model text is never executed; it is only parsed, truncated to its last ``MAX_CHARS`` characters and
  under math-verify's own time limit, so a hostile output cannot hang or crash a run.
- A regex fast path handles plain numbers without sympy (the scheduler benchmark parses 10⁴ turns/s).
- A restated computation is not an answer: when the text's last expression is numbers joined by
  ``+``, ``-``, ``*`` (``"To find 5 + 1 - 6, we"``), math-verify would hand back ``5 + 1 - 6`` and
  verification would evaluate it to the gold ``0`` — a trained agent found exactly that and scored
  97% by copying the question (``docs/benchmarks.md``). :func:`extract` returns ``None`` for it.
  Fractions (``3/4``) and expressions with more than numbers in them are left to math-verify.
- Nor is an expression cut off after an operator (``"5 + 1 - 6 = 0 + "`` at the token limit):
  math-verify would hand back ``0 +``, and verification would score it as ``0``.
- Results are cached, except a math-verify *timeout*: that says the machine was slow, not that the
  text is wrong, so the call returns "no answer" / "wrong" this time and is tried again next time.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

MAX_CHARS = 4000
TIMEOUT_S = 3
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_BOXED_NUMBER = re.compile(r"\\boxed\{\s*(-?\d+(?:\.\d+)?)\s*\}")
_PLAIN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.?\s*$")
# numbers joined by +, -, * (×, ·): a computation restated, not its result
_ARITHMETIC = re.compile(r"^\s*\(?\s*-?\d+(?:\.\d+)?(?:\s*\)?\s*[-+*×·]\s*\(?\s*-?\d+(?:\.\d+)?\s*\)?)+\s*$")
# an expression cut off after an operator ("= 0 + " at the token limit): its value is unknown
_UNFINISHED = re.compile(r"[-+*/×·^]\s*$")


def _number_key(s: str) -> str | None:
    try:
        x = float(s)
    except ValueError:
        return None
    if x != x or x in (float("inf"), float("-inf")):
        return None
    return f"{x:.10g}"


class TimeoutException(Exception):
    """math-verify ran out of time (its own ``TimeoutException``, re-raised as ours)."""


# math-verify is imported on first use: it brings sympy and latex2sympy (~0.3 s), which the CLI's
# start and plain-number answers (the regex fast path) never need
def parse(text: str, **kwargs: Any) -> Any:
    from math_verify import parse as mv_parse

    return mv_parse(text, **kwargs)


def verify(gold: Any, pred: Any, **kwargs: Any) -> Any:
    from math_verify import verify as mv_verify

    return mv_verify(gold, pred, **kwargs)


def _timed_out(e: BaseException) -> bool:
    from math_verify.errors import TimeoutException as MathVerifyTimeout

    return isinstance(e, MathVerifyTimeout)


def _parse(text: str) -> list[Any] | None:
    """math-verify's parse, ``None`` when the text does not parse; a timeout propagates."""
    try:
        return list(parse(text, parsing_timeout=TIMEOUT_S, raise_on_error=True))
    except BaseException as e:  # math-verify's timeout is a BaseException
        if _timed_out(e):
            raise TimeoutException(str(e)) from e
        if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: never swallowed
            raise
        return None  # lark and sympy raise many types on malformed text: it has no parse


def extract(text: str | None) -> str | None:
    r"""The final answer of a completion as a string, or ``None`` if none can be parsed (or if it is a
    computation restated rather than its result, or an expression cut off after an operator).

    Examples
    --------
    >>> extract("so the answer is \\boxed{7}"), extract("It is -5."), extract("x = 3/4")
    ('7', '-5', '3/4')
    >>> extract("To find 5 + 1 - 6, we") is None  # the question copied back: not an answer
    True
    >>> extract("5 + 1 - 6 = 0 + ") is None  # cut off mid-expression: "0 + 3" was coming
    True
    """
    try:
        return _extract(text)
    except TimeoutException:  # not cached: lru_cache does not keep calls that raise
        return None


@lru_cache(maxsize=65536)
def _extract(text: str | None) -> str | None:
    if not text:
        return None
    tail = text[-MAX_CHARS:]
    if (m := _PLAIN.match(tail)) is not None:
        return m.group(1)
    last_box = tail.rfind("\\boxed")
    if last_box >= 0 and (m := _BOXED_NUMBER.match(tail, last_box)) is not None:
        return m.group(1)
    parsed = _parse(tail)
    if parsed is None or len(parsed) < 2:
        return None
    answer = str(parsed[1])
    return None if _ARITHMETIC.match(answer) or _UNFINISHED.search(answer) else answer


def answer_key(answer: str | None) -> str | None:
    """A canonical form for voting: ``7``, ``7.0`` and ``\\boxed{7}`` share one key."""
    try:
        return _answer_key(answer)
    except TimeoutException:  # the raw text is the key this time; not cached
        return None if answer is None else answer.strip()


@lru_cache(maxsize=65536)
def _answer_key(answer: str | None) -> str | None:
    if answer is None:
        return None
    s = answer.strip().strip("$").strip()
    if (k := _number_key(s.replace(",", ""))) is not None:
        return k
    parsed = _parse(f"${s}$")
    if parsed:
        v = parsed[0]
        try:
            if getattr(v, "is_number", False):
                return _number_key(str(float(v))) or str(v)
        except (TypeError, ValueError):
            pass
        return str(v)
    return s


def is_correct(pred: str | None, gold: str) -> bool:
    r"""Whether ``pred`` equals ``gold`` (gold parsed first). ``None`` is wrong.

    Examples
    --------
    >>> is_correct("\\frac{1}{2}", "0.5"), is_correct("7.0", "7"), is_correct(None, "7")
    (True, True, False)
    """
    try:
        return _is_correct(pred, gold)
    except TimeoutException:  # scored wrong this time, not cached: a slow machine is not a verdict
        return False


@lru_cache(maxsize=65536)
def _is_correct(pred: str | None, gold: str) -> bool:
    if pred is None:
        return False
    kp, kg = answer_key(pred), answer_key(gold)
    if kp is not None and kp == kg:
        return True
    g, p = _parse(f"${gold}$"), _parse(f"${pred}$")
    if not g or not p:
        return False
    try:
        return bool(verify(g, p, timeout_seconds=TIMEOUT_S, raise_on_error=True))
    except BaseException as e:
        if _timed_out(e):
            raise TimeoutException(str(e)) from e
        if not isinstance(e, Exception):
            raise
        return False  # sympy raises many types comparing odd expressions: they are not equal


_BOXED_ANY = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_score(text: str | None, low: float = 0.0, high: float = 10.0) -> float | None:
    r"""A grader's score, parsed strictly: the content of the *last* ``\boxed{}`` must be a plain
    number (``7``, ``7.5``, ``7/10`` out of ``high``) within ``[low, high]``; anything else — no box,
    a word, an expression, a number out of range — is ``None`` (unparseable, never guessed).

    Examples
    --------
    >>> parse_score("looks right \\boxed{8}"), parse_score("\\boxed{8/10}"), parse_score("\\boxed{11}")
    (8.0, 8.0, None)
    >>> parse_score("score 9"), parse_score("\\boxed{high}")
    (None, None)
    """
    if not text:
        return None
    boxes = _BOXED_ANY.findall(text[-MAX_CHARS:])
    if not boxes:
        return None
    s = boxes[-1].strip().strip("$").strip()
    if s.endswith(f"/{high:g}"):
        s = s[: -len(f"/{high:g}")].strip()
    if _PLAIN.match(s) is None:
        return None
    v = float(s.rstrip("."))
    return v if low <= v <= high else None


__all__ = ["answer_key", "extract", "is_correct", "parse_score"]
