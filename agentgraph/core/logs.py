"""Engine output to a log file, our own output to the terminal.

vLLM and the libraries under it write to the process's file descriptors 1 and 2 — from this
process (Python logging handlers bound to the original streams, C extensions) and from the engine
and worker processes it spawns, which inherit them: Triton, NUMA, tcmalloc and deprecation notices
around our progress bars. :func:`engine_output_to` points descriptors 1 and 2 at a log file (so
everything written there, by any process started inside the block, lands in the file) and gives
Python's ``sys.stdout``/``sys.stderr`` — what our tables, progress bars and ``--json`` line use —
duplicates of the terminal's descriptors. Python warnings go to the log as well. Leaving the block
restores everything. The CLI does this unless ``--verbose``; a library user opts in with
``VLLM(log_file=...)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def engine_output_to(path: str | Path) -> Iterator[Path]:
    """Inside the block, descriptors 1 and 2 write to ``path`` (appended); ``sys.stdout`` and
    ``sys.stderr`` still reach the terminal."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    old_out, old_err, old_show = sys.stdout, sys.stderr, warnings.showwarning
    new_out = _reopen(saved[1], old_out)
    new_err = _reopen(saved[2], old_err)
    with open(log, "a", encoding="utf-8", closefd=False) as log_text:

        def to_log(message: Any, category: Any, filename: str, lineno: int, *a: Any, **k: Any) -> None:
            log_text.write(warnings.formatwarning(message, category, filename, lineno))
            log_text.flush()

        try:
            os.dup2(log, 1)
            os.dup2(log, 2)
            sys.stdout, sys.stderr = new_out, new_err
            warnings.showwarning = to_log
            _repoint_handlers({new_out: sys.__stdout__, new_err: sys.__stderr__})
            yield p
        finally:
            warnings.showwarning = old_show
            for s in (new_out, new_err):
                with contextlib.suppress(OSError, ValueError):
                    s.flush()
            sys.stdout, sys.stderr = old_out, old_err
            os.dup2(saved[1], 1)
            os.dup2(saved[2], 2)
            for fd in (*saved.values(), log):
                os.close(fd)


def _repoint_handlers(moves: dict[IO[str], Any]) -> None:
    """Log handlers bound to the terminal streams put in place (a library that configured its
    logging inside the block) write to the original streams, i.e. to the log file, instead."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    for lg in loggers:
        for h in lg.handlers:
            # only plain StreamHandlers: subclasses may resolve their stream themselves (no setter)
            if type(h) is logging.StreamHandler and h.stream in moves and moves[h.stream] is not None:
                h.setStream(moves[h.stream])


def _reopen(fd: int, like: IO[str]) -> IO[str]:
    encoding = getattr(like, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1, encoding=encoding, errors="replace", closefd=False)
