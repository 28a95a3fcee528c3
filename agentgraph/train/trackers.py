"""Experiment trackers (``report_to``, TRL's convention): the figures of ``log.jsonl``, step by step.

``tensorboard`` writes event files under ``OUT/tensorboard`` (offline; ``tensorboard --logdir OUT``),
``wandb`` logs to Weights & Biases (``WANDB_MODE=offline`` works too), ``none`` writes only
``log.jsonl``. Both trackers are accelerate's (``accelerate.tracking``), so they log from the main
process only. A step record is flattened: numbers as they are, ``seconds.rollout`` as
``seconds/rollout``, ``None`` (no held-out evaluation that step) left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentgraph.core.errors import ConfigError


def scalars(record: BaseModel) -> dict[str, float]:
    """The numeric figures of a step record, nested dicts joined with ``/``."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool | int | float):
            out[prefix] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)

    walk("", record.model_dump(exclude={"step"}))
    return out


class Tracker:
    """Logs step records to ``report_to`` for a run in ``out`` (a no-op for ``none``)."""

    def __init__(self, report_to: str, out: Path | None, run_name: str) -> None:
        self.report_to = report_to
        self._impl: Any = None
        if report_to == "none":
            return
        if out is None:
            raise ConfigError("report_to", f"{report_to} needs a run folder", "give the trainer out=...")
        if report_to == "tensorboard":
            try:
                from accelerate.tracking import TensorBoardTracker

                self._impl = TensorBoardTracker(run_name, out / "tensorboard")
                self._impl.start()
            except (ImportError, RuntimeError) as e:
                raise ConfigError(
                    "report_to", f"tensorboard is not installed ({e})", "pip install tensorboard"
                ) from None
        elif report_to == "wandb":
            try:
                from accelerate.tracking import WandBTracker

                self._impl = WandBTracker(run_name, dir=str(out))
                self._impl.start()
            except (ImportError, RuntimeError) as e:
                raise ConfigError("report_to", f"wandb is not available ({e})", "pip install wandb") from None
        else:
            raise ConfigError("report_to", f"unknown tracker {report_to!r}", "use none, tensorboard or wandb")

    def log(self, record: BaseModel, step: int) -> None:
        if self._impl is not None:
            self._impl.log(scalars(record), step=step)

    def close(self) -> None:
        if self._impl is not None:
            self._impl.finish()
            self._impl = None
