"""The one training loop of every trainer: progress, step log, checkpoint cadence, atomic writes.

A trainer (a :class:`Learner`) provides one step and its checkpoint; :func:`train_loop` runs steps
until ``steps`` (or a time limit), shows a progress bar, calls ``after_step`` (held-out evaluation),
appends every step's record to ``OUT/log.jsonl`` as it happens, and checkpoints every
``checkpoint_every`` steps and at the end. On resume the log is cut back to the checkpoint
(:func:`trim_log`) so no step appears twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel

from agentgraph.core.atomic import write_text_atomic


class StepRecord(BaseModel):
    """What every trainer's per-step record has."""

    step: int


S = TypeVar("S", bound=StepRecord)


class Learner(Protocol):
    step: int

    async def train_step(self) -> StepRecord: ...

    async def after_step(self, entry: StepRecord, last: bool) -> None:
        """Runs before the step is logged (a held-out evaluation fills in its record)."""
        ...

    def record(self, entry: StepRecord) -> None:
        """Keep the step's record (in memory and in the log file)."""
        ...

    def save_checkpoint(self) -> Path | None: ...

    def agree(self, flag: bool) -> bool:
        """The main process's ``flag`` on every process (one process: ``flag``)."""
        ...


async def train_loop(
    learner: Learner,
    *,
    steps: int,
    checkpoint_every: int,
    desc: str,
    progress: bool = False,
    time_limit_min: float | None = None,
    postfix: Callable[[StepRecord], dict[str, object]] | None = None,
) -> None:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=learner.step, desc=desc, unit="step")
    started = time.perf_counter()
    try:
        while learner.step < steps:
            entry = await learner.train_step()
            out_of_time = learner.agree(
                time_limit_min is not None and time.perf_counter() - started > 60 * time_limit_min
            )
            last = learner.step >= steps or out_of_time
            await learner.after_step(entry, last)
            learner.record(entry)
            if learner.step % checkpoint_every == 0 or last:
                learner.save_checkpoint()
            if bar is not None:
                bar.update(1)
                if postfix is not None:
                    bar.set_postfix(postfix(entry))
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()


def append_log(path: Path, entry: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(entry.model_dump_json() + "\n")
        fh.flush()


def trim_log(path: Path, model: type[S], step: int) -> list[S]:
    """The records of steps ≤ ``step``; the file is rewritten to hold exactly those.

    A crash between a log line and its checkpoint leaves extra whole lines (dropped here), and a
    process killed mid-write leaves a torn *last* line (dropped too). Any other line that does not
    parse is damage this function will not paper over: it raises.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept: list[S] = []
    for i, raw in enumerate(lines):
        try:
            record = model.model_validate_json(raw)
        except ValueError:
            if i == len(lines) - 1:  # the torn last line of a killed run
                break
            raise ValueError(f"{path}: line {i + 1} is not a {model.__name__} record") from None
        if record.step <= step:
            kept.append(record)
    write_text_atomic(path, "".join(x.model_dump_json() + "\n" for x in kept))
    return kept
