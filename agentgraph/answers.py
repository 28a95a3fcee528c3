"""Answer extraction and verification, with ``math-verify``.

- ``extract(text)`` finds the final answer in a completion (``\\boxed{}`` first, then math-verify's
  anchor-free expression extraction, e.g. the last number). It returns ``None`` when nothing parses;
  ``None`` is always scored wrong — never right, unlike the reference debate code.
- ``is_correct(pred, gold)`` parses the gold answer first and verifies with math-verify.
- Model text is never executed; it is only parsed, truncated to its last ``MAX_CHARS`` characters and
  under math-verify's own time limit, so a hostile output cannot hang or crash a run.
- A regex fast path handles plain numbers without sympy (the scheduler benchmark parses 10⁴ turns/s).
"""

from __future__ import annotations

import re
from functools import lru_cache

from math_verify import parse, verify

MAX_CHARS = 4000
TIMEOUT_S = 3
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_BOXED_NUMBER = re.compile(r"\\boxed\{\s*(-?\d+(?:\.\d+)?)\s*\}")
_PLAIN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*\.?\s*$")


def _number_key(s: str) -> str | None:
    try:
        x = float(s)
    except ValueError:
        return None
    if x != x or x in (float("inf"), float("-inf")):
        return None
    return f"{x:.10g}"


@lru_cache(maxsize=65536)
def extract(text: str | None) -> str | None:
    """The final answer of a completion as a string, or ``None`` if none can be parsed."""
    if not text:
        return None
    tail = text[-MAX_CHARS:]
    if (m := _PLAIN.match(tail)) is not None:
        return m.group(1)
    last_box = tail.rfind("\\boxed")
    if last_box >= 0 and (m := _BOXED_NUMBER.match(tail, last_box)) is not None:
        return m.group(1)
    try:
        parsed = parse(tail, parsing_timeout=TIMEOUT_S)
    except Exception:  # math-verify raises on pathological input; that output has no answer
        return None
    if len(parsed) < 2:
        return None
    return str(parsed[1])


@lru_cache(maxsize=65536)
def answer_key(answer: str | None) -> str | None:
    """A canonical form for voting: ``7``, ``7.0`` and ``\\boxed{7}`` share one key."""
    if answer is None:
        return None
    s = answer.strip().strip("$").strip()
    if (k := _number_key(s.replace(",", ""))) is not None:
        return k
    try:
        parsed = parse(f"${s}$", parsing_timeout=TIMEOUT_S)
    except Exception:
        return s
    if parsed:
        v = parsed[0]
        try:
            if getattr(v, "is_number", False):
                return _number_key(str(float(v))) or str(v)
        except (TypeError, ValueError):
            pass
        return str(v)
    return s


@lru_cache(maxsize=65536)
def is_correct(pred: str | None, gold: str) -> bool:
    """Whether ``pred`` equals ``gold`` (gold parsed first). ``None`` is wrong."""
    if pred is None:
        return False
    kp, kg = answer_key(pred), answer_key(gold)
    if kp is not None and kp == kg:
        return True
    try:
        g = parse(f"${gold}$", parsing_timeout=TIMEOUT_S)
        p = parse(f"${pred}$", parsing_timeout=TIMEOUT_S)
        return bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=TIMEOUT_S))
    except Exception:
        return False


__all__ = ["answer_key", "extract", "is_correct"]
