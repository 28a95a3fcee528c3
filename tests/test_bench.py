"""The bench scripts run what they claim: checked on the scripted backend (figures live in docs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *argv, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_tokens_bench_counts_every_team_and_shows_the_summary_bound() -> None:
    out = bench("tokens.py", "--backend", "scripted", "--problems", "6", "--agents", "2,3,6")
    rows = {r["team"]: r for r in out["rows"]}
    assert set(rows) == {"full:3", "full:3+summarize", "chain:3", "tree:2x1", "pruned:3"}
    for r in rows.values():
        assert r["n"] == 6
        assert (
            r["tokens_per_problem"] == r["prompt_tokens_per_problem"] + r["completion_tokens_per_problem"] > 0
        )
    assert rows["full:3"]["turns_per_problem"] == 6
    assert rows["full:3+summarize"]["turns_per_problem"] == 7  # one summary between the two rounds
    # the ring reads fewer peer messages than the full debate, so its prompts are shorter
    assert rows["pruned:3"]["prompt_tokens_per_problem"] < rows["full:3"]["prompt_tokens_per_problem"]
    full_max = [b["round1_prompt_max"] for b in out["bound"] if b["policy"] == "full"]
    summ_max = [b["round1_prompt_max"] for b in out["bound"] if b["policy"] == "summarize"]
    assert full_max[0] < full_max[1] < full_max[2]  # every peer's answer is in the prompt
    assert max(summ_max) - min(summ_max) < out["summary_cap_tokens"] and out["summarize_bounded"] is True


def test_scheduler_bench_reports_rates_and_memory() -> None:
    out = bench("scheduler.py", "--big", "300", "--floor")
    assert set(out["by_sessions"]) == {"1", "100", "300"}
    assert out["floor_ratio"] > 0  # the structure alone ran (every session decided on the prebuilt turns)
    assert out["overhead_ratio_waiting"] > 0  # the run where every request waited once finished too
    assert out["overhead_ratio_fresh"] > 0
    assert out["agent_turns_per_s"] == max(out["by_sessions"].values()) > 0
    assert out["mb_per_1000_sessions"] > 0
    ratios = out["overhead_ratio_by_sessions"]
    assert set(ratios) == {"100", "300"} and ratios["100"] == out["overhead_ratio"]
    for n in ("100", "300"):  # each ratio is the skeleton's rate over ours, both timed in this run
        expected = out["skeleton_turns_per_s_by_sessions"][n] / out["by_sessions"][n]
        assert abs(ratios[n] - expected) < 0.01 * expected + 0.01


def test_thinking_bench_spends_each_budget_exactly() -> None:
    out = bench("thinking.py", "--backend", "scripted", "--limit", "4", "--budgets", "0,8,32")
    rows = {r["budget"]: r for r in out["rows"]}
    assert set(rows) == {0, 8, 32}
    # 3 agents x 2 rounds per problem, each forced after exactly its budget (the script thinks longer)
    for budget, r in rows.items():
        assert r["thinking_tokens_per_problem"] == 6 * budget and r["n"] == 4
        assert r["forced_turns"] == "24/24" and r["accuracy"] == 1.0 and r["wall_s"] >= 0
        assert 0 < r["answer_tokens_per_problem"] <= 6 * 16


def test_train_memory_bench_measures_both_passes() -> None:
    out = bench("train_memory.py", "--lengths", "1024,2048", "--vocabs", "50000", "--batch", "1")
    assert [(r["length"], r["vocab"]) for r in out["rows"]] == [(1024, 50000), (2048, 50000)]
    last = out["rows"][-1]
    assert out["peak_mb"] == last["peak_mb"] and out["full_logits_peak_mb"] == last["full_logits_peak_mb"]
    # full logits of 2048 positions × 50k are 390 MB before softmax and gradient; ours keep one chunk
    # (measured 577 MB for ours, model activations included)
    assert last["full_logits_peak_mb"] > 1.5 * last["peak_mb"] > 0


def test_tts_bench_sets_every_shape_beside_matched_self_consistency(tmp_path: Path) -> None:
    out = bench("tts.py", "--backend", "scripted", "--limit", "30", "--out", str(tmp_path))
    rows = {r["shape"]: r for r in out["rows"]}
    assert set(rows) >= {"single greedy", "sc:5", "bon:4", "full:3", "beam:2x2", "cascade:sc:3+full:3"}
    for r in rows.values():
        assert r["n"] == 30 and r["sc_n"] >= 1
        lo, hi = r["difference_ci95"]
        assert lo <= r["difference"] <= hi
        assert abs(r["difference"] - (r["accuracy"] - r["sc_accuracy"])) < 1e-9
    # tokens grow with the shape: one sample < five samples < four samples and four grades of them
    assert rows["single greedy"]["tokens_per_problem"] < rows["sc:5"]["tokens_per_problem"]
    assert rows["sc:5"]["tokens_per_problem"] < rows["bon:4"]["tokens_per_problem"]
    assert rows["sc:5"]["sc_n"] == 5  # the pool's first five samples cost what sc:5 cost
    stages = rows["cascade:sc:3+full:3"]["stages"]
    assert sum(stages.values()) == 30 and set(stages) <= {"0", "1"}
    (target,) = [t for t in out["cascade_target"] if t["cascade"] == "cascade:sc:3+full:3"]
    assert target["met"] == (target["accuracy"] >= target["best_ci95"][0] and target["token_share"] <= 0.6)
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_mixed_bench_sets_the_team_beside_each_models_self_consistency(tmp_path: Path) -> None:
    out = bench("mixed.py", "--backend", "scripted", "--out", str(tmp_path))
    rows = {r["team"]: r for r in out["rows"]}
    assert set(rows) == {"single smollm2", "single model-b", "mixed"}
    mixed = rows["mixed"]
    assert mixed["models"] == ["smollm2", "model-b"]
    # the scripted models are right 70% and 50% of the time: alone, each is near its own rate
    assert rows["single smollm2"]["accuracy"] > rows["single model-b"]["accuracy"]
    # the team's tokens are split by model (a1 on model B, a0 and a2 on model A: 2 to 1)
    by = out["tokens_by_model"]
    assert set(by) == {"smollm2", "model-b"} and abs(by["smollm2"] - 2 * by["model-b"]) < 1e-6
    assert abs(sum(by.values()) - mixed["tokens_per_problem"]) < 1e-6
    for model, sc in mixed["sc"].items():
        assert sc["n"] >= 2, model  # the team spends several samples' tokens
        # matched: self-consistency's tokens are within one sample of the team's
        one = rows[f"single {model}"]["tokens_per_problem"]
        assert abs(sc["tokens_per_problem"] - mixed["tokens_per_problem"]) <= one


@pytest.mark.vllm
def test_sessions_under_load_bench_times_each_policy_on_the_same_arrivals(tmp_path: Path) -> None:
    out = bench(
        "sessions_under_load.py", "--sessions", "4", "--rate", "8", "--max-tokens", "8",
        "--policies", "fcfs,session-progress", "--out", str(tmp_path),
    )  # fmt: skip
    rows = {r["policy"]: r for r in out["rows"]}
    assert set(rows) == {"fcfs", "session-progress"}
    for r in rows.values():
        assert r["sessions"] == 4 and 0 < r["p50_s"] <= r["p95_s"] and r["tokens_per_s"] > 0
    assert rows["fcfs"]["p50_vs_fcfs"] == 1.0
    assert (tmp_path / "session-progress" / "engine.log").stat().st_size > 0
