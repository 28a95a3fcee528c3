from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentgraph import load
from agentgraph.cli import main

SCRIPTED = ["--backend", "scripted", "--scripted", "tests.agents:calc"]
SC2 = ["compare", "--dataset", "arith:n=2", "--topologies", "sc:2"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_run_prints_answer_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = tmp_path / "t.jsonl"
    code, out, _ = run_cli(
        capsys, "run", "What is 12 + 30?", "--gold", "42", "--transcript", str(t), "--json", *SCRIPTED
    )
    assert code == 0
    assert "team answer (majority): 42" in out
    j = last_json(out)
    assert j["answer"] == "42" and j["correct"] is True and j["requests"] == 6
    assert j["answers_by_round"]["1"] == {"a0": "42", "a1": "42", "a2": "42"}
    (s,) = load(t).values()
    assert len(s.turns) == 6 and s.result is not None and s.result.answer == "42"


def test_eval_writes_metrics_report_and_plots(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys,
        "eval",
        "--dataset",
        "arith:n=6,seed=1",
        "--topology",
        "chain:3",
        "--decision",
        "chain_tail",
        "--out",
        str(out),
        "--json",
        *SCRIPTED,
    )
    assert code == 0
    j = last_json(stdout)
    assert j["n"] == 6 and j["accuracy"] == 1.0 and j["ci95_low"] > 0.5
    assert j["prompt_tokens_per_problem"] > 0 and set(j["per_agent_accuracy"]) == {"a0", "a1", "a2"}
    for f in ("metrics.json", "report.md", "report.html", "topology.png", "rounds.png", "transcripts.jsonl"):
        assert (out / f).stat().st_size > 0, f
    assert json.loads((out / "metrics.json").read_text())["correct"] == 6


def test_eval_resume_skips_finished_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["eval", "--dataset", "arith:n=5", "--topology", "full:2", "--out", str(out), "--json", *SCRIPTED]
    assert run_cli(capsys, *base, "--limit", "3")[0] == 0
    code, _, err = run_cli(capsys, *base)
    assert code == 2 and "--resume" in err
    code, stdout, _ = run_cli(capsys, *base, "--resume")
    assert code == 0 and last_json(stdout)["n"] == 5
    lines = [json.loads(x) for x in (out / "transcripts.jsonl").read_text().splitlines()]
    headers = [x["session"] for x in lines if x["type"] == "session"]
    assert len(headers) == len(set(headers)) == 5  # nothing doubled


def test_compare_side_by_side(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, stdout, _ = run_cli(
        capsys,
        "compare",
        "--dataset",
        "arith:n=8",
        "--topologies",
        "single,chain:3,full:3,tree:2x1",
        "--out",
        str(tmp_path),
        "--json",
        "--backend",
        "scripted",
        "--scripted",
        "tests.agents:noisy",
    )
    assert code == 0
    rows = {r["topology"]: r for r in last_json(stdout)["rows"]}
    assert set(rows) == {"single", "chain:3", "full:3", "tree:2x1"}
    assert rows["full:3"]["prompt_tokens_per_problem"] > rows["single"]["prompt_tokens_per_problem"]
    assert all(0 <= r["ci95"][0] <= r["accuracy"] <= r["ci95"][1] <= 1 for r in rows.values())
    assert (tmp_path / "compare.png").exists() and (tmp_path / "full_3" / "report.md").exists()
    # matched budget is the default: every row has its self-consistency twin at the same tokens
    j = last_json(stdout)
    assert j["budget"] == "matched" and set(j["sc_curve"]) >= {"1", "2"}
    for r in rows.values():
        sc = r["sc_matched"]
        lo, hi = sc["difference_ci95"]
        assert sc["sc_n"] >= 1 and lo <= sc["difference"] <= hi
        assert sum(r["effects"].values()) == 8
    assert rows["full:3"]["sc_matched"]["sc_n"] > rows["single"]["sc_matched"]["sc_n"]
    assert "Is the team better than voting" in stdout


def test_show_draws(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "t.png"
    code, stdout, _ = run_cli(capsys, "show", "tree:2x2", "--png", str(png), "--json")
    assert code == 0
    j = last_json(stdout)
    assert j["agents"] == 7 and j["spatial_edges"] == 6 and j["generations"][-1] == ["m"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_config_file_and_flags_win(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("topology: chain:2\nrounds: 3\nbackend: scripted\nscripted: tests.agents:calc\n")
    code, stdout, _ = run_cli(
        capsys, "run", "What is 1 + 1?", "--config", str(cfg), "--rounds", "1", "--json"
    )
    assert code == 0 and last_json(stdout)["requests"] == 2  # chain:2 from the file, 1 round from the flag


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def _model_dir(path: Path, *, config: bool) -> str:
    path.mkdir()
    if config:
        (path / "config.json").write_text('{"model_type": "qwen2"}')
    (path / "README.md").write_text("weights were never downloaded")
    return str(path)


BAD = [
    (["--dataset", "nosuchset"], "dataset: unknown dataset"),
    (["--dataset", "{missing}"], "row 2.answer: missing"),
    (["--dataset", "{nogold}"], "has no gold answer"),
    (["--dataset", "{empty}"], "has no problems"),
    (["--dataset", "{latin}"], "not UTF-8"),
    (["--dataset", "{badjson}"], "line 2: is not valid JSON"),
    (["--dataset", "arith:n=3", "--limit", "0"], "limit"),
    (["--dataset", "arith:n=3", "--out", "{file}/sub"], "out: cannot write"),
    (["--dataset", "arith:n=3", "--topology", "mesh:3"], "topology: unknown topology"),
    (["--dataset", "arith:n=3", "--topology", "{cyclic}"], "cycle"),
    (["--dataset", "arith:n=3", "--role", "wizard"], "unknown role 'wizard'"),
    (["--dataset", "arith:n=3", "--rounds", "0"], "rounds"),
    (["--dataset", "arith:n=3", "--backend", "gpt"], "unknown backend 'gpt'"),
    (["--dataset", "arith:n=3", "--backend", "openai"], "endpoint"),
    (["--dataset", "arith:n=3", "--config", "{badcfg}"], "config.colour"),
    (["--dataset", "arith:n=3", "--config", "{badyaml}"], "not valid YAML"),
    (["--dataset", "arith:n=3", "--inter-round", "gossip"], "inter_round"),
    (["--dataset", "arith:ops=/"], "arith.ops"),
    (["--dataset", "arith:n=3", "--model", "./no/such/dir", "--backend", "vllm"], "model: path"),
    ([], "dataset: missing"),
    (["--dataset", "arith:n=3", "--rounds", "-1"], "rounds"),
    (["--dataset", "arith:n=3", "--rounds", "100000"], "rounds"),
    (["--dataset", "arith:n=3", "--max-tokens", "0"], "max_tokens"),
    (["--dataset", "arith:n=3", "--temperature", "-1"], "temperature"),
    (["--dataset", "arith:n=3", "--limit", "-5"], "limit"),
    (["--dataset", "arith:n=99999999"], "arith.n"),
    (["--dataset", "arith:n=3", "--backend", "openai", "--endpoint", "ftp://x"], "endpoints"),
    (
        ["--dataset", "arith:n=3", "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1"],
        "no endpoint answered",
    ),
    (["--dataset", "arith:n=3", "--config", "{wrongtype}"], "config.rounds"),
    (["--dataset", "arith:n=3", "--role-card", "{badcard}"], "not valid YAML"),
    (["--dataset", "arith:n=3", "--role-card", "{latincard}"], "not UTF-8"),
    (["--dataset", "{longprompt}", "--max-model-len", "64"], "over the context"),
    (["--dataset", "arith:n=3", "--decision", "chain_tail", "--topology", "full:3"], "chain_tail"),
    (["--dataset", "arith:n=3", "--scripted", "no_such_module:fn"], "scripted: cannot load"),
    # reasoning models and engine settings
    (
        ["--dataset", "arith:n=3", "--backend", "vllm", "--model", "nobody-xyz/no-such-model"],
        "model: 'nobody",
    ),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--model", "{noweights}"], "has no weights"),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--model", "{notamodel}"], "has no config.json"),
    (
        ["--dataset", "arith:n=3", "--think", "<think>,</think>", "--thinking-budget", "5000"],
        "thinking_budget: 5000 thinking + 256 answer tokens",
    ),
    (["--dataset", "arith:n=3", "--thinking-budget", "64"], "marks no thinking"),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--engine-arg", "bogus_knob=1"], "no engine argument"),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--engine-arg", "max_num_seqs=x"], "refused by vLLM"),
    (["--dataset", "arith:n=3", "--tensor-parallel-size", "2"], "tensor_parallel_size: is a setting"),
    (["--dataset", "arith:n=3", "--share", "thoughts"], "share"),
    (["--dataset", "arith:n=3", "--thinking-budget", "lots"], "thinking_budget"),
    (["--dataset", "arith:n=3", "--thinking-budget", "-4"], "thinking_budget"),
    (["--dataset", "arith:n=3", "--preset", "gpt5"], "preset: unknown preset"),
    (["--dataset", "arith:n=3", "--overflow", "ignore"], "overflow"),
    (["--dataset", "arith:n=3", "--think", "<think>"], "think"),
    # test-time-scaling shapes
    (["--dataset", "arith:n=3", "--topology", "cascade:sc:3"], "cascade:A+B"),
    (["--dataset", "arith:n=3", "--topology", "beam:2"], "topology: cannot parse 'beam:2'"),
    (["--dataset", "arith:n=3", "--topology", "bon:0"], "n: 0 is not an integer"),
    (["--dataset", "arith:n=3", "--decision", "best_score"], "best_score needs grader agents"),
    (["--dataset", "arith:n=3", "--min-agreement", "2"], "min_agreement"),
    # flags of the wrong type and values vLLM refuses: one line too (issue 29)
    (["--dataset", "arith:n=3", "--rounds", "two"], "rounds: invalid int value: 'two'"),
    (["--dataset", "arith:n=3", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--dataset", "arith:n=3", "--think", "<a>,</a>,x"], "think"),
    (["--dataset", "arith:n=3", "--thinking-budget", "64,,128"], "thinking_budget"),
    (["--dataset", "arith:n=3", "--tokenizer", "Qwen/Qwen3-1.7B"], "tokenizer: names the tokenizer"),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--dtype", "float7"], "dtype: 'float7' is refused"),
    (["--dataset", "arith:n=3", "--backend", "vllm", "--kv-cache-dtype", "int3"], "kv_cache_dtype: 'int3'"),
    (["--dataset", "arith:n=3", "--role-model", "solver="], "role_model: 'solver=' is not ROLE=MODEL"),
    (["--dataset", "arith:n=3", "--role-model", "wizard=m"], "no agent of role 'wizard'"),
    (["--dataset", "arith:n=3", "--config", "{listcfg}"], "must be a YAML mapping"),
    (["--dataset", "arith:n=3", "--adapters", "{file}"], "adapters"),
    (["--dataset", "arith:n=3", "--temperature", "hot"], "temperature: invalid float value"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    files = {
        "missing": _write(tmp_path, "m.jsonl", '{"question": "q", "answer": "1"}\n{"question": "q"}\n'),
        "nogold": _write(tmp_path, "g.jsonl", '{"question": "q", "answer": ""}\n'),
        "empty": _write(tmp_path, "e.jsonl", ""),
        "latin": _write(tmp_path, "l.jsonl", b'{"question": "caf\xe9", "answer": "1"}\n'),
        "badjson": _write(tmp_path, "b.jsonl", '{"question": "q", "answer": "1"}\n{oops\n'),
        "file": _write(tmp_path, "plain", "x"),
        "cyclic": _write(
            tmp_path,
            "c.json",
            json.dumps(
                {
                    "agents": [{"name": "a", "role": "solver"}, {"name": "b", "role": "solver"}],
                    "edges": [
                        {"source": "a", "target": "b", "kind": "spatial"},
                        {"source": "b", "target": "a", "kind": "spatial"},
                    ],
                }
            ),
        ),
        "badcfg": _write(tmp_path, "bad.yaml", "colour: blue\n"),
        "listcfg": _write(tmp_path, "list.yaml", "- rounds: 2\n"),
        "badyaml": _write(tmp_path, "bad2.yaml", "rounds: [1\n"),
        "wrongtype": _write(tmp_path, "bad3.yaml", "rounds: two\n"),
        "badcard": _write(tmp_path, "card.yaml", "system_prompt: [x\n"),
        "latincard": _write(tmp_path, "card2.yaml", b"system_prompt: caf\xe9\n"),
        "noweights": _model_dir(tmp_path / "noweights", config=True),
        "notamodel": _model_dir(tmp_path / "notamodel", config=False),
        "longprompt": _write(
            tmp_path, "long.jsonl", json.dumps({"question": "word " * 200, "answer": "1"}) + "\n"
        ),
    }
    argv = [a.format(**files) for a in args]
    out_dir = tmp_path / "out"
    if "--out" not in argv:
        argv += ["--out", str(out_dir)]
    if "--backend" not in argv:
        argv += ["--backend", "scripted"] + (
            [] if "--scripted" in argv else ["--scripted", "tests.agents:calc"]
        )
    code, _, err = run_cli(capsys, "eval", *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists()  # nothing half-written


def test_train_graph_and_resume(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "tg"
    argv = [
        "train",
        "graph",
        "--base",
        "full:3",
        "--dataset",
        "arith:n=10",
        "--group",
        "4",
        "--problems-per-step",
        "1",
        "--rounds",
        "2",
        "--out",
        str(out),
        "--json",
        "--backend",
        "scripted",
        "--scripted",
        "tests.agents:noisy",
    ]
    code, stdout, _ = run_cli(capsys, *argv, "--steps", "4")
    assert code == 0
    j = last_json(stdout)
    assert j["steps"] == 4 and j["edges_total"] == 9 and 0 <= j["edges_kept"] <= 9
    assert len(j["probabilities"]) == 9
    code, _, err = run_cli(capsys, *argv, "--steps", "6")
    assert code == 2 and "--resume" in err
    code, stdout, _ = run_cli(capsys, *argv, "--steps", "6", "--resume")
    assert code == 0 and last_json(stdout)["steps"] == 6
    assert len((out / "log.jsonl").read_text().splitlines()) == 6
    code, _, err = run_cli(capsys, "train", "graph", "--dataset", "arith:n=3", "--out", str(tmp_path / "x"))
    assert code == 2 and "base: missing" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "   ", *SCRIPTED], "problem: empty problem text"),
        (["run", "What is 1 + 1?", "--topology", "tree:0x2", *SCRIPTED], "branching"),
        (["run", "What is 1 + 1?", "--backend", "scripted"], "scripted: the scripted backend needs"),
        (["show", "ring:4"], "unknown topology"),
        (["show", "missing.json"], "does not exist"),
        (["compare", "--dataset", "arith:n=2", *SCRIPTED], "topologies: missing"),
        (
            ["compare", "--dataset", "arith:n=2", "--topologies", "sc:2", "--budget", "same", *SCRIPTED],
            "budget",
        ),
        (
            ["compare", "--dataset", "arith:n=2", "--topologies", "sc:2", "--max-samples", "0", *SCRIPTED],
            "max_samples",
        ),
    ],
)
def test_bad_input_other_commands(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


SERVE = ["--backend", "scripted", "--scripted", "tests.agents:calc"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--teams", "{emptyteams}", *SERVE], "names no team"),
        (["serve", "--teams", "{wrongteams}", *SERVE], "teams.debate.rounds"),
        (["serve", "--teams", "{listteams}", *SERVE], "teams.debate: is not a mapping"),
        (["serve", "--teams", "{unknownteams}", *SERVE], "teams.debate.colour"),
        (["serve", "--teams", "{latin}", *SERVE], "not UTF-8"),
        (["serve", "--host", "no-such-host.invalid", "--port", "0", *SERVE], "host: cannot listen"),
        (["serve", "--port", "{busy}", *SERVE], "host: cannot listen"),
        (["serve", "--port", "http", *SERVE], "port: invalid int value"),
        (["serve", "--request-timeout", "0", *SERVE], "request_timeout"),
        (["serve", "--max-concurrency", "0", *SERVE], "max_concurrency"),
        (["view", "{nothing}"], "holds no transcripts.jsonl"),
        (["view", "{latin}"], "is not a directory"),
        (["view", "{nothing}", "--port", "-1"], "port"),
        (["train", "graph", "--base", "sc:3", "--dataset", "arith:n=3", *SERVE], "no learnable edges"),
        (["train", "graph", "--base", "full:3", "--dataset", "arith:n=3", "--group", "1", *SERVE], "group"),
        (["train", "graph", "--base", "full:3", "--dataset", "arith:n=3", "--lr", "nan", *SERVE], "lr"),
        (["train", "graph", "--base", "full:3", "--dataset", "arith:n=3", "--config", "{steps}", *SERVE],
         "config.steps"),
        (["train", "roles", "--dataset", "arith:n=3", "--train-roles", "solver,,x", *SERVE], "empty item"),
        (["train", "roles", "--dataset", "arith:n=3", "--train-roles", "wizard", *SERVE], "'wizard'"),
        (["train", "roles", "--dataset", "arith:n=3", "--train-roles", "solver", "--lora-r", "0", *SERVE],
         "lora_r"),
        (["train", "roles", "--dataset", "arith:n=3", "--train-roles", "solver", "--guard", "maybe", *SERVE],
         "guard"),
        (["train", "joint", "--base", "full:3", "--dataset", "arith:n=3", "--schedule", "often", *SERVE],
         "schedule"),
        (["compare", "--dataset", "arith:n=2", "--topologies", "sc:2,,full:3", *SERVE], "empty item"),
    ],
)  # fmt: skip
def test_bad_input_serve_view_train_leave_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        files = {
            "emptyteams": _write(tmp_path, "t0.yaml", "{}\n"),
            "wrongteams": _write(tmp_path, "t1.yaml", "debate: {topology: full:3, rounds: two}\n"),
            "listteams": _write(tmp_path, "t2.yaml", "debate: [1, 2]\n"),
            "unknownteams": _write(tmp_path, "t3.yaml", "debate: {topology: full:3, colour: red}\n"),
            "latin": _write(tmp_path, "l.yaml", b"debate: caf\xe9\n"),
            "steps": _write(tmp_path, "s.yaml", "steps: -1\n"),
            "nothing": str(tmp_path / "empty-run"),
            "busy": str(busy.getsockname()[1]),
        }
        (tmp_path / "empty-run").mkdir()
        out = tmp_path / "out"
        argv = [a.format(**files) for a in argv]
        if argv[0] != "view":
            argv += ["--out", str(out)]
        code, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists() and list((tmp_path / "empty-run").iterdir()) == []
