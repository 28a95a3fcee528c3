"""A trainer's ``log.jsonl``: one validated record per step, appended as it happens, and cut back to
a checkpoint on resume so no step appears twice."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel


class StepRecord(BaseModel):
    """What every trainer's per-step record has."""

    step: int


S = TypeVar("S", bound=StepRecord)


def append(path: Path, entry: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(entry.model_dump_json() + "\n")
        fh.flush()


def trim(path: Path, model: type[S], step: int) -> list[S]:
    """The records of steps ≤ ``step``; the file is rewritten to hold exactly those (a crash between
    a log line and its checkpoint, or a torn last line of a killed run, leaves extra lines)."""
    if not path.exists():
        return []
    kept: list[S] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            record = model.model_validate_json(raw)
        except ValueError:  # the torn last line of a killed run
            continue
        if record.step <= step:
            kept.append(record)
    path.write_text("".join(x.model_dump_json() + "\n" for x in kept), encoding="utf-8")
    return kept
