"""Role GRPO as an accelerate program on this CPU: two processes (gloo) against one, trackers.

The two-process run is launched exactly as a user launches it (``accelerate launch --multi_gpu
--num_processes 2 -m agentgraph train roles ...``; with no GPU accelerate starts the same torchrun
processes and they talk gloo). Scripted rollouts with the embedded tokenizer make both runs see the
same batches. Tolerances, measured: the summed gradient's norm and the loss agree to float32 noise
(relative 1e-4); the adapters agree to a mean |Δ| of ~1e-8 — except a few dozen of 600k weights
whose gradient is a near-cancelling sum: Adam's first steps move each weight by ±lr × sign(g), so
where float32 noise flips the sign of a g ≈ 0 the weights differ by up to 2·lr. We assert the
mean and that under 0.1% of weights differ by more than 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "train", "roles", "--backend", "scripted", "--scripted", "tests.test_train_roles:adder",
    "--topology", "chain:2", "--train-roles", "solver", "--dataset", "arith:ops=+,n=8", "--group", "4",
    "--problems-per-step", "2", "--lora-r", "2", "--lr", "0.001", "--eval-every", "0", "--json",
]  # fmt: skip


def launch(out: Path, steps: int, processes: int, *extra: str) -> dict[str, object]:
    if processes == 1:
        cmd = [sys.executable, "-m", "agentgraph"]
    else:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(29500 + os.getpid() % 1000), "-m", "agentgraph",
        ]  # fmt: skip
    cmd += [*ARGS, "--steps", str(steps), "--out", str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, proc.stdout  # one summary per run, not one per process
    summary: dict[str, object] = json.loads(lines[0])
    return summary


def log(out: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_two_processes_equal_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    one = launch(tmp_path / "one", 2, 1)
    assert one["processes"] == 1
    # two processes, stopped after one step and resumed by both from the same checkpoint
    two = launch(tmp_path / "two", 1, 2)
    assert two["processes"] == 2
    launch(tmp_path / "two", 2, 2, "--resume")
    a, b = log(tmp_path / "one"), log(tmp_path / "two")
    assert [x["step"] for x in b] == [1, 2]  # written once, by the main process
    for x, y in zip(a, b, strict=True):
        assert x["turns"] == y["turns"] and x["reward"] == y["reward"]
        assert float(y["grad_norm"]) == pytest.approx(float(x["grad_norm"]), rel=1e-4)
        assert float(y["loss"]) == pytest.approx(float(x["loss"]), abs=1e-6)
        assert "broadcast" in y["seconds"]  # type: ignore[operator]
    wa = load_file(str(tmp_path / "one" / "final" / "solver" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "two" / "final" / "solver" / "adapter_model.safetensors"))
    diff = torch.cat([(wa[k] - wb[k]).abs().flatten() for k in wa])
    assert float(diff.mean()) < 1e-6
    assert float((diff > 1e-5).float().mean()) < 1e-3
    assert any(float(wa[k].abs().max()) > 1e-4 for k in wa if "lora_B" in k)  # it did train


async def test_tensorboard_holds_the_log(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoTokenizer

    from agentgraph.backends import Scripted
    from agentgraph.core.models import provision
    from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer
    from examples.train_roles_arith import additions, make_team
    from tests.test_train_roles import adder

    backend = Scripted(default=adder, seed=1, tokenizer=AutoTokenizer.from_pretrained(provision()))
    config = RoleGRPOConfig(
        train_roles=("adder",), group_size=4, problems_per_step=1, steps=2, lora_r=2, report_to="tensorboard"
    )
    trainer = RoleGRPOTrainer(make_team(), additions(8, 0), backend, config, out=tmp_path)
    await trainer.train()
    runs = list((tmp_path / "tensorboard").glob("*"))
    assert len(runs) == 1
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"reward", "loss", "grad_norm", "seconds/rollout"} <= set(tags)
    for x in log(tmp_path):
        for tag in ("reward", "loss", "grad_norm"):
            got = {e.step: e.value for e in events.Scalars(tag)}
            assert got[int(x["step"])] == pytest.approx(float(x[tag]), rel=1e-6, abs=1e-9)  # type: ignore[arg-type]
