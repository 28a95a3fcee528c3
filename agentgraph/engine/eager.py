"""``asyncio.gather`` for coroutines that finish without waiting: each starts at once.

``asyncio.gather`` wraps every coroutine in a task that first runs on a later turn of the event
loop, even one that never waits (a turn a zero-latency scripted backend answers, a session of such
turns). :func:`gather` instead runs each coroutine right away, in order, up to its first real wait.
A coroutine that finishes at once then costs no task, no loop turn and no done-callback: a quarter
of the scheduler's time per turn on a scripted backend (``bench/scheduler.py``), which is what
graph and role training on scripted agents run on.

A coroutine that does wait costs more this way than as a plain task (on Python 3.11 it becomes a
task through a wrapper that resumes it where it stopped: ~8 µs a turn more when every request
waits once), and on 3.11 its first steps run in the caller's task, so anything bound to the task it
started in (an anyio or httpx cancel scope, ``asyncio.timeout``, a context variable) would see
another task after the wait. So the scheduler starts a session's coroutines this way only when its
backend declares that its requests finish without waiting (:func:`safe`: an ``eager`` attribute that
is true, as on a :class:`~agentgraph.backends.Scripted` backend with no latency and plain-function
agents); engines and fleets do not, and get ``asyncio.gather``. On Python ≥ 3.12 each coroutine gets
a real task started eagerly (``asyncio.Task(..., eager_start=True)``, what
``asyncio.eager_task_factory`` does for a whole loop), for the scheduler's gathers only.

Semantics kept from ``asyncio.gather`` (``return_exceptions=False``): results in argument order;
the first exception raised (in start order for those raised at once) propagates after every
coroutine was started, and the others run on; cancelling the caller cancels the coroutines still
waiting. What differs: coroutines started later begin after the earlier ones reached their first
wait, not all on the next loop turn (the order they start in is the same).

Examples
--------
>>> import asyncio
>>> async def at_once(x):
...     return x
>>> async def later(x):
...     await asyncio.sleep(0)
...     return x * 10
>>> asyncio.run(gather(at_once(1), later(2), at_once(3)))
[1, 20, 3]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def safe(backend: object) -> bool:
    """Whether coroutines that call ``backend`` are started eagerly: when it declares that its
    requests finish without waiting (an ``eager`` attribute that is true)."""
    return getattr(backend, "eager", False) is True


async def gather(*coros: Coroutine[Any, Any, T], eager: bool = True) -> list[T]:
    """Results of ``coros`` in order, each started at once (see the module docstring); with
    ``eager=False``, ``asyncio.gather`` (a single coroutine is awaited in the caller's task)."""
    if not eager:
        if len(coros) == 1:
            return [await coros[0]]
        return list(await asyncio.gather(*coros))
    if sys.version_info >= (3, 12):
        return await _gather_tasks(coros)
    results: list[Any] = [None] * len(coros)
    waiting: list[tuple[int, asyncio.Future[T]]] = []
    error: BaseException | None = None
    for i, c in enumerate(coros):
        try:
            first = c.send(None)
        except StopIteration as done:
            results[i] = done.value
        except BaseException as e:
            if error is None:  # re-raised below, once every coroutine started
                error = e
        else:
            waiting.append((i, asyncio.ensure_future(_Resume(c, first))))
    if error is not None:
        for _, f in waiting:  # as asyncio.gather does: their later errors count as retrieved
            f.add_done_callback(_retrieve)
        raise error
    if waiting:
        for (i, _), value in zip(waiting, await asyncio.gather(*(f for _, f in waiting)), strict=True):
            results[i] = value
    return results


async def _gather_tasks(coros: tuple[Coroutine[Any, Any, T], ...]) -> list[T]:
    loop = asyncio.get_running_loop()
    tasks = [asyncio.Task(c, loop=loop, eager_start=True) for c in coros]  # type: ignore[call-arg,unused-ignore]
    if not all(t.done() for t in tasks):
        return list(await asyncio.gather(*tasks))
    error: BaseException | None = None
    for t in tasks:  # all finished at once: no gather, no loop turn
        if not t.cancelled() and (e := t.exception()) is not None and error is None:
            error = e
    if error is not None:
        raise error
    return [t.result() for t in tasks]


def _retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


class _Resume(Coroutine[Any, Any, Any]):
    """The rest of ``coro``, which stopped at ``waits_on`` (what it yielded to its task), as a
    coroutine for a new task: its first step hands ``waits_on`` to the task, so the task waits on
    the same future; everything after, a cancellation thrown in before that first step included,
    goes to ``coro`` itself (a generator could not take a throw before it started)."""

    __slots__ = ("coro", "waits_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waits_on: Any) -> None:
        self.coro = coro
        self.waits_on: Any = waits_on

    def send(self, value: Any) -> Any:
        if (first := self.waits_on) is not _STEPPED:
            self.waits_on = _STEPPED
            return first
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.waits_on = _STEPPED
        return self.coro.throw(typ if val is None else val)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self  # type: ignore[return-value]


_STEPPED = object()
