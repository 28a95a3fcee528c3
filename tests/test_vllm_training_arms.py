"""examples/compare_training.py end to end on the embedded model: TRL's GRPOTrainer, role, graph and
joint GRPO each get the same (tiny) training budget on one vLLM engine, and every arm is evaluated
on the same held-out problems by that engine (the TRL adapter served as a LoRA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.compare_training import DEFAULT_ARMS, main


def test_six_arms_at_equal_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "arms.png"
    argv = [
        "--minutes",
        "0.15",
        "--heldout",
        "6",
        "--train",
        "24",
        "--group",
        "2",
        "--problems-per-step",
        "1",
    ]
    main(
        [
            *argv,
            "--problems-per-step",
            "1",
            "--eval-points",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--plot",
            str(plot),
            "--json",
        ]
    )
    j = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["arm"]: r for r in j["rows"]}
    assert set(rows) == {*DEFAULT_ARMS["add"], "single sc:3", "single+trl sc:3"}
    assert j["heldout_problems"] == 6 and plot.is_file() and j["seeds"] == [0]
    assert all(r["seed"] == 0 for r in rows.values()) and {a["arm"] for a in j["arms"]} == set(rows)
    for r in rows.values():
        lo, hi = r["ci95"]
        assert 0 <= lo <= r["accuracy"] <= hi <= 1 and r["tokens_per_problem"] > 0
    for arm in ("single+trl", "team+roles", "team+graph", "team+joint"):
        r = rows[arm]
        # every training arm trained at least its budget (a step begun before the limit finishes)
        assert r["steps"] >= 1 and r["minutes"] >= 0.15 and len(r["curve"]) == 1
        assert r["curve"][-1][1] == r["accuracy"]
    assert Path(rows["single+trl"]["adapters"][-1], "adapter_model.safetensors").is_file()
    # three agents' prompts against one: the team and sc:3 cost several single answers
    assert rows["team"]["tokens_per_problem"] > 2 * rows["single"]["tokens_per_problem"]
    assert rows["single sc:3"]["tokens_per_problem"] > 2 * rows["single"]["tokens_per_problem"]
    for arm in ("team+graph", "team+joint"):
        assert set(rows[arm]["pruned_edges"]) <= {"a0->a1", "a0->a2", "a1->a2"}
        assert len(rows[arm]["edges"]) == 3
    assert (tmp_path / "run" / "seed-0" / "graph" / "pruned.json").is_file()
    assert json.loads((tmp_path / "run" / "seed-0.json").read_text()) == j["rows"]  # written as it ended
