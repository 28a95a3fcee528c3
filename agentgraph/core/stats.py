"""The statistics every report shares: intervals and unbiased estimators over repeated samples.

- :func:`wilson` — the 95% Wilson score interval of one proportion.
- :func:`paired_difference` — the difference of two accuracies measured on the *same* problems,
  with Newcombe's interval for paired proportions (method 10 of Newcombe, 1998: Wilson intervals of
  both accuracies combined through the correlation of the paired outcomes). It is narrower than
  two independent intervals because problems both get right (or both miss) carry no information
  about the difference.
- :func:`pass_at_k` — the unbiased pass@k of Chen et al. (2021): from ``n`` samples with ``c``
  right, the chance that a random ``k``-subset holds a right one, ``1 − C(n−c, k) / C(n, k)``.
- :func:`maj_at_k` — the unbiased maj@k: the exact expectation, over every ``k``-subset of the
  ``n`` samples (drawn without replacement), of a plurality vote being right, with ties broken
  uniformly at random and unparseable samples drawn but not voting (as :mod:`agentgraph.protocol.voting`).
  Computed by counting subsets class by class (multivariate hypergeometric), not by enumeration.

Examples
--------
>>> round(pass_at_k(5, 2, 1), 3), round(pass_at_k(5, 2, 2), 3)
(0.4, 0.7)
>>> round(maj_at_k({"right": 3, "other": 2}, "right", 1), 3)
0.6
>>> d, lo, hi = paired_difference([True] * 6 + [False] * 4, [True] * 4 + [False] * 6)
>>> round(d, 2), lo < d < hi
(0.2, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Z95 = 1.959964


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson score interval of ``k`` successes in ``n`` trials."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(first: Sequence[bool], second: Sequence[bool]) -> tuple[float, float, float]:
    """``(acc(first) − acc(second), low, high)``: Newcombe's 95% interval for paired proportions.

    ``first[i]`` and ``second[i]`` are the outcomes of two methods on the same problem ``i``.
    """
    if len(first) != len(second):
        raise ValueError("paired outcomes must have the same length")
    n = len(first)
    if n == 0:
        return 0.0, 0.0, 0.0
    a = sum(1 for x, y in zip(first, second, strict=True) if x and y)
    b = sum(1 for x, y in zip(first, second, strict=True) if x and not y)
    c = sum(1 for x, y in zip(first, second, strict=True) if y and not x)
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n)
    l2, u2 = wilson(a + c, n)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(den) if den else 0.0
    diff = p1 - p2
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return diff, max(-1.0, diff - dl), min(1.0, diff + du)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are right (``k ≤ n``)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"need 0 < k ≤ n and 0 ≤ c ≤ n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_at_k(counts: Mapping[str | None, int], right: str | None, k: int) -> float:
    """Unbiased maj@k: the chance a plurality vote over a random ``k``-subset is right.

    Parameters
    ----------
    counts : mapping
        Answer key → how many of the ``n`` samples gave it; key ``None`` counts unparseable samples
        (drawn, but they do not vote).
    right : str or None
        The key of the right answer (``None``: no sample was right, the result is 0).
    k : int
        Subset size, ``1 ≤ k ≤ n``.
    """
    n = sum(counts.values())
    if not 0 < k <= n:
        raise ValueError(f"need 0 < k ≤ n, got n={n}, k={k}")
    r = counts.get(right, 0) if right is not None else 0
    if r == 0:
        return 0.0
    others = [v for key, v in counts.items() if key is not None and key != right]
    blanks = counts.get(None, 0)
    total = 0.0
    for x in range(1, min(r, k) + 1):  # x right answers drawn
        # ways[m][t]: subsets of the other classes of total size m, every class < x except t of
        # them at exactly x (ties with the right answer)
        ways: dict[tuple[int, int], int] = {(0, 0): 1}
        for size in others:
            nxt: dict[tuple[int, int], int] = {}
            for (m, t), w in ways.items():
                for y in range(0, min(size, x, k - x - m) + 1):
                    key = (m + y, t + (y == x))
                    nxt[key] = nxt.get(key, 0) + w * math.comb(size, y)
            ways = nxt
        drawn_right = math.comb(r, x)
        for (m, t), w in ways.items():
            rest = k - x - m  # filled with unparseable samples
            if rest < 0 or rest > blanks:
                continue
            total += drawn_right * w * math.comb(blanks, rest) / (t + 1)
    return total / math.comb(n, k)


__all__ = ["Z95", "maj_at_k", "paired_difference", "pass_at_k", "wilson"]
