"""Atomic writes: a file or folder is either the old one or the new one, whole, after any crash.

Every writer of the library that replaces a file (metrics, topologies, adapters indexes, step logs,
checkpoints) goes through here: write a sibling temp, flush and fsync it, rename it over the target
(a rename is atomic on POSIX), then fsync the directory so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a directory for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` fills a temp file beside ``path``, which then replaces ``path``."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    write(tmp)
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    tmp.replace(p)
    _sync_dir(p.parent)
    return p


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8), atomically and durably."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_dir_atomic(tmp: Path, folder: Path) -> None:
    """Swap the finished ``tmp`` folder in for ``folder``: a crash leaves one of the two whole
    (``folder.old`` holds the previous one between the two renames; :func:`find_dir` looks there)."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.replace(old)
    tmp.replace(folder)
    _sync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def find_dir(folder: Path) -> Path:
    """``folder``, or its ``.old`` twin when a run was killed between the swap's two renames."""
    old = folder.with_name(folder.name + ".old")
    return old if not folder.is_dir() and old.is_dir() else folder


__all__ = ["find_dir", "replace_dir_atomic", "write_atomic", "write_text_atomic"]
