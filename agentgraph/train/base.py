"""What every trainer shares: the step log (in memory, ``log.jsonl``, the trackers), agreement
across processes and the hook after a step. The loop itself is :func:`agentgraph.train.loop.train_loop`,
which drives any :class:`~agentgraph.train.loop.Learner`; graph, role and joint trainers are ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from agentgraph.train.loop import StepRecord, append_log
from agentgraph.train.trackers import Tracker

L = TypeVar("L", bound=StepRecord)


class BaseTrainer(Generic[L]):
    """The shared half of a trainer; a subclass sets ``log``, ``out``, ``tracker`` and ``step``."""

    log_model: type[StepRecord]  # the subclass's step record
    log: list[L]
    out: Path | None
    tracker: Tracker
    step: int

    main: bool = True  # whether this process writes logs, checkpoints and trackers

    def record(self, entry: StepRecord) -> None:
        """Keep a step's record: in ``log`` and, with an ``out`` folder, appended to its ``log.jsonl``
        (main process) and sent to the trackers."""
        assert isinstance(entry, self.log_model), type(entry)
        self.log.append(entry)  # type: ignore[arg-type]
        if self.out is not None and self.main:
            append_log(self.out / "log.jsonl", entry)
            self.tracker.log(entry, entry.step)

    def agree(self, flag: bool) -> bool:
        """The main process's ``flag`` on every process (one process: ``flag``)."""
        return flag

    async def after_step(self, entry: StepRecord, last: bool) -> None:
        """Runs before the step is logged (a held-out evaluation fills in its record)."""
        return None
