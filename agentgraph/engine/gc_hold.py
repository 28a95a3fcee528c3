"""Fewer full cyclic-GC passes while sessions run.

A run of many sessions keeps every finished session's records (turns, usage, token id lists) alive
until it returns: tens of tracked objects per session, so the heap of tracked objects grows the
whole run, and CPython's oldest generation is collected again and again over all of it (each time
the survivors grow by a quarter and ten younger collections have passed). At 10,000 sessions of the
scheduler benchmark that was 10 full passes and ~30% of the run (``bench/scheduler.py``; the same
run with the full-pass trigger at 100 instead of 10: 9,300 → 12,800 agent-turns/s, one full pass).

:func:`held` raises the trigger of the oldest generation (``threshold2``) to at least
:data:`HOLD` while a run is in flight, and puts back what was set before when the last run in flight
ends. The young generations are collected as before, so short-lived cycles are still freed at once;
what waits longer is a full pass, i.e. cyclic garbage that survived two collections. A user's own
higher ``threshold2`` (or a disabled GC) is kept.

Examples
--------
>>> import gc
>>> before = gc.get_threshold()
>>> with held():
...     gc.get_threshold()[2] >= HOLD
True
>>> gc.get_threshold() == before
True
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HOLD = 100
"""``threshold2`` while runs are in flight (CPython's default is 10)."""

# the GC's thresholds are one per process, so the runs in flight are counted per process: the first
# to start raises the trigger, the last to end restores it (runs overlap in one event loop: serve)
_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def held() -> Iterator[None]:
    """Full GC passes held back (see the module docstring) for the body's duration."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            t0, t1, t2 = gc.get_threshold()
            _saved = (t0, t1, t2)
            gc.set_threshold(t0, t1, max(t2, HOLD))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                # a threshold the user changed meanwhile (not ours) is theirs to keep
                if gc.get_threshold()[2] == max(_saved[2], HOLD):
                    gc.set_threshold(*gc.get_threshold()[:2], _saved[2])
                _saved = None
