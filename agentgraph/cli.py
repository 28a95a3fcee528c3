"""The ``agentgraph`` command line: run, eval, compare, show, demo, train graph | roles | joint.

Every option can also come from a YAML file (``--config FILE``; keys are the long option names with
underscores, validated by pydantic); flags given on the command line win. Bad input prints one line
``error: FIELD: PROBLEM (FIX)`` and exits with status 2. ``--json`` ends the output with one JSON
object. Ctrl-C or SIGTERM cancels the work and shuts the engine down (exit 130 / 143); what was already
written stays on disk (``eval --resume`` continues it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentgraph.backends import VLLM, Adapter, Backend, OpenAI, Scripted
from agentgraph.backends.scripted import ScriptedAgent
from agentgraph.datasets import load_dataset
from agentgraph.errors import ConfigError
from agentgraph.evaluation import Metrics, evaluate
from agentgraph.reports import COMPARE_HEADER, compare_row, write_compare_report, write_run_report
from agentgraph.sampling import SamplingOverrides
from agentgraph.team import Team
from agentgraph.topology import Topology
from roles import RoleBook
from topologies import from_spec

T = TypeVar("T")
DEMO_TOPOLOGIES = "single,chain:3,full:3,tree:2x1"


class Options(BaseModel):
    """Every option of every command (``--config`` files are validated against this)."""

    model_config = ConfigDict(extra="forbid")

    topology: str = "full:3"
    role: str = "solver"
    rounds: int = Field(2, ge=1, le=1000)
    inter_round: str = "full"
    decision: str = "majority"
    early_stop: bool = False
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    temperature: float | None = Field(None, ge=0.0, le=10.0)
    role_card: list[str] = Field(default_factory=list)
    backend: str = "vllm"
    model: str | None = None
    endpoint: list[str] = Field(default_factory=list)
    scripted: str | None = None
    seed: int = Field(0, ge=0)
    max_model_len: int = Field(2048, ge=16)
    dataset: str | None = None
    limit: int | None = Field(None, ge=1)
    out: str | None = None
    resume: bool = False
    topologies: str | None = None
    transcript: str | None = None
    gold: str | None = None
    png: str | None = None
    base: str | None = None
    group: int = Field(4, ge=2)
    steps: int = Field(200, ge=1)
    lr: float | None = Field(None, gt=0)
    token_cost: float = Field(0.0, ge=0)
    problems_per_step: int = Field(1, ge=1)
    prune_threshold: float = Field(0.5, ge=0, le=1)
    checkpoint_every: int = Field(20, ge=1)
    adapters: str | None = None
    train_roles: str | None = None
    heldout: str | None = None
    eval_every: int = Field(5, ge=0)
    loss_type: str = Field("dapo", pattern=r"^(grpo|dapo|dr_grpo)$")
    beta: float = Field(0.0, ge=0)
    alpha: float = Field(0.5, ge=0, le=1)
    lora_r: int = Field(16, ge=1, le=256)
    minutes: float | None = Field(None, gt=0)
    schedule: str = Field("shared", pattern=r"^(shared|alternate)$")
    json_output: bool = Field(False, alias="json")


def _team_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topology", help="single, chain:N, star:N, tree:BxD, full:N, layered:W-W, random:N:P, or .json"
    )
    p.add_argument("--role", help="role of the builder's agents (default solver)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--inter-round", dest="inter_round", help="full | partial[:K[:SCORE]] | summarize")
    p.add_argument("--decision", help="majority | weighted | judge | chain_tail | tree_root")
    p.add_argument("--early-stop", dest="early_stop", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--max-tokens", dest="max_tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--role-card", dest="role_card", action="append", help="extra role card YAML (repeatable)")


def _backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", help="vllm (in-process, default) | openai | scripted")
    p.add_argument("--model", help="HF id or local path (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument(
        "--endpoint", action="append", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    p.add_argument("--scripted", help="for --backend scripted: module:function agent")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-model-len", dest="max_model_len", type=int)
    p.add_argument("--adapters", help="a role-training run (train roles --out) whose adapters the roles use")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of options (flags win)")
    p.add_argument("--json", dest="json", action="store_true", default=None, help="end with one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgraph", description="Teams of small reasoning models on vLLM."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one team on one problem")
    run.add_argument("problem")
    run.add_argument("--gold", help="the right answer, if known")
    run.add_argument("--transcript", help="write the JSONL transcript here")
    ev = sub.add_parser("eval", help="one team over a dataset")
    cmp_ = sub.add_parser("compare", help="several topologies over a dataset, side by side")
    cmp_.add_argument("--topologies", help="comma-separated specs, e.g. single,chain:3,full:3,tree:2x2")
    for p in (ev, cmp_):
        p.add_argument(
            "--dataset", help="gsm8k | math500 | svamp | mawps-singleop | arith:... | FILE.jsonl | hf:NAME"
        )
        p.add_argument("--limit", type=int)
        p.add_argument("--out", help="run directory (default runs/<command>-<time>)")
        p.add_argument("--resume", action="store_true", default=None)
    show = sub.add_parser("show", help="describe and draw a topology")
    show.add_argument("topology_spec", metavar="TOPOLOGY")
    show.add_argument("--png", help="write a picture here")
    demo = sub.add_parser(
        "demo", help="the main job: single agent vs three topologies on generated arithmetic"
    )
    demo.add_argument("--limit", type=int, help="problems (default 8)")
    demo.add_argument("--out")
    train = sub.add_parser(
        "train", help="train a team: its graph (edge weights), its roles (LoRA adapters) or both"
    )
    tsub = train.add_subparsers(dest="target", required=True)
    tg = tsub.add_parser("graph", help="graph GRPO on the edge logits of a base topology, then prune")
    tg.add_argument("--base", help="base topology whose edges are the candidates, e.g. full:6")
    tg.add_argument("--dataset")
    tg.add_argument("--limit", type=int)
    tg.add_argument("--group", type=int, help="graphs sampled per problem (default 4)")
    tg.add_argument("--steps", type=int, help="optimizer steps (default 200)")
    tg.add_argument("--problems-per-step", dest="problems_per_step", type=int)
    tg.add_argument("--lr", type=float, help="Adam learning rate on the logits (default 0.1)")
    tg.add_argument("--token-cost", dest="token_cost", type=float, help="λ: reward -= λ·tokens/1000")
    tg.add_argument("--prune-threshold", dest="prune_threshold", type=float)
    tg.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, help="steps (default 20)")
    tg.add_argument("--out")
    tg.add_argument("--resume", action="store_true", default=None)
    tr = tsub.add_parser("roles", help="role GRPO: one LoRA adapter per trained role, rollouts on vLLM")
    tj = tsub.add_parser("joint", help="graph GRPO and role GRPO from the same rollouts")
    for p in (tr, tj):
        p.add_argument("--train-roles", dest="train_roles", help="comma-separated roles, e.g. solver,critic")
        p.add_argument("--dataset")
        p.add_argument("--limit", type=int)
        p.add_argument("--heldout", help="held-out dataset spec, evaluated every --eval-every steps")
        p.add_argument("--eval-every", dest="eval_every", type=int, help="steps (default 5)")
        p.add_argument("--group", type=int, help="sessions per problem (default 4)")
        p.add_argument("--steps", type=int, help="optimizer steps (default 200)")
        p.add_argument("--problems-per-step", dest="problems_per_step", type=int)
        p.add_argument("--lr", type=float, help="AdamW learning rate on the adapters (default 5e-5)")
        p.add_argument("--loss-type", dest="loss_type", help="dapo (default) | grpo | dr_grpo")
        p.add_argument("--beta", type=float, help="k3 KL coefficient to the base (default 0)")
        p.add_argument("--alpha", type=float, help="weight of the team outcome in a turn's reward (0.5)")
        p.add_argument("--lora-r", dest="lora_r", type=int, help="LoRA rank (default 16)")
        p.add_argument("--minutes", type=float, help="stop training after this many minutes")
        p.add_argument("--out")
        p.add_argument("--resume", action="store_true", default=None)
    tj.add_argument("--base", help="base topology whose edges are learned, e.g. full:3")
    tj.add_argument("--token-cost", dest="token_cost", type=float, help="λ: reward -= λ·tokens/1000")
    tj.add_argument("--schedule", help="shared (one rollout, both updates; default) | alternate")
    for p in (run, ev, cmp_, demo, tg, tr, tj):
        _team_flags(p) if p is not demo else None
        _backend_flags(p)
    for p in (run, ev, cmp_, show, demo, tg, tr, tj):
        _common(p)
    return parser


def _validation_error(e: ValidationError, where: str) -> ConfigError:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "options"
    return ConfigError(f"{where}{loc}", err["msg"], "see agentgraph COMMAND --help")


def resolve_options(ns: argparse.Namespace) -> Options:
    data: dict[str, Any] = {}
    if getattr(ns, "config", None):
        path = Path(ns.config)
        if not path.is_file():
            raise ConfigError("config", f"file {str(path)!r} does not exist", "give a YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError("config", f"{path} is not UTF-8", "save it as UTF-8") from None
        except yaml.YAMLError:
            raise ConfigError("config", f"{path} is not valid YAML", "fix its syntax") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("config", f"{path} must be a mapping of option: value", "e.g. rounds: 2")
        data.update({str(k).replace("-", "_"): v for k, v in (loaded or {}).items()})
    for key, value in vars(ns).items():
        if key in ("command", "target", "config", "problem", "topology_spec") or value is None:
            continue
        data[key] = value
    try:
        return Options.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, "config." if getattr(ns, "config", None) else "") from None


def load_callable(spec: str) -> ScriptedAgent:
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise ConfigError(
            "scripted", f"{spec!r} is not module:function", "e.g. --scripted mypkg.agents:noisy"
        )
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError("scripted", f"cannot load {spec!r} ({e})", "check the module path") from None
    if not callable(obj):
        raise ConfigError("scripted", f"{spec!r} is not callable", "point at a function")
    agent: ScriptedAgent = obj
    return agent


def make_backend(o: Options, *, lora_rank: int | None = None, train: bool = False) -> Backend:
    """The backend ``o`` names; LoRA is on when adapters are served (``--adapters``) or trained."""
    if o.adapters and o.backend != "vllm":
        raise ConfigError(
            "adapters", f"the {o.backend} backend does not serve our adapters", "use --backend vllm"
        )
    if o.adapters and lora_rank is None:
        lora_rank = _load_adapters(o.adapters)[1]
    if o.backend == "vllm":
        if lora_rank is None:
            return VLLM(o.model, seed=o.seed, max_model_len=o.max_model_len)
        return VLLM(
            o.model, seed=o.seed, max_model_len=o.max_model_len, enable_lora=True, max_lora_rank=lora_rank
        )
    if o.backend == "openai":
        if not o.endpoint:
            raise ConfigError(
                "endpoint",
                "the openai backend needs at least one --endpoint",
                "e.g. --endpoint http://127.0.0.1:8000/v1",
            )
        return OpenAI(o.endpoint, model=o.model)
    if o.backend == "scripted":
        if not o.scripted:
            raise ConfigError(
                "scripted", "the scripted backend needs --scripted module:function", "name an agent function"
            )
        tokenizer = None
        if train:  # trainers score turns with the policy model: give it that model's token ids
            from transformers import AutoTokenizer

            from agentgraph.models import resolve

            tokenizer = AutoTokenizer.from_pretrained(resolve(o.model))
        return Scripted(
            default=load_callable(o.scripted), seed=o.seed, max_context=o.max_model_len, tokenizer=tokenizer
        )
    raise ConfigError("backend", f"unknown backend {o.backend!r}", "use vllm, openai or scripted")


def _load_adapters(run: str) -> tuple[dict[str, Adapter], int]:
    from agentgraph.train.roles import load_adapters

    return load_adapters(run)


def make_team(o: Options, topology_spec: str | None = None) -> Team:
    return make_team_from(o, from_spec(topology_spec or o.topology, role=o.role))


async def _with_signals(coro: Awaitable[T]) -> T:
    """Run ``coro``, turning SIGTERM into cancellation so ``async with`` blocks shut engines down."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def _console() -> Any:
    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    if not console.is_terminal:  # logs and pipes: do not squeeze the table to 80 columns
        console = Console(stderr=False, highlight=False, width=160)
    return console


def _print_compare(title: str, named: Sequence[tuple[str, Metrics]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for h in COMPARE_HEADER:
        table.add_column(h)
    for name, m in named:
        table.add_row(*compare_row(name, m))
    _console().print(table)


# -- commands ------------------------------------------------------------------------------------
async def cmd_run(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    from agentgraph.transcript import TranscriptWriter

    team = make_team(o)
    backend = make_backend(o)
    async with backend:
        if o.transcript:
            with TranscriptWriter(o.transcript) as w:
                r = await team.solve(ns.problem, backend, gold=o.gold, writer=w)
        else:
            r = await team.solve(ns.problem, backend, gold=o.gold)
    by_round = {rnd: r.answers(rnd) for rnd in range(r.rounds_run)}
    from rich.table import Table

    table = Table(title=team.describe())
    table.add_column("round")
    for a in team.topology.agents:
        table.add_column(a)
    for rnd, answers in by_round.items():
        table.add_row(str(rnd), *[str(answers.get(a)) for a in team.topology.agents])
    _console().print(table)
    verdict = "" if r.correct is None else ("  (right)" if r.correct else f"  (wrong; gold {r.gold})")
    print(f"team answer ({r.decision.method}): {r.answer}{verdict}")
    print(
        f"tokens: {r.usage.prompt_tokens} prompt + {r.usage.completion_tokens} completion, "
        f"{r.usage.requests} requests, {r.wall_s:.1f} s, {r.errors} failed"
    )
    return {
        "answer": r.answer,
        "correct": r.correct,
        "answers_by_round": by_round,
        "session": r.session,
        "prompt_tokens": r.usage.prompt_tokens,
        "completion_tokens": r.usage.completion_tokens,
        "requests": r.usage.requests,
        "errors": r.errors,
        "wall_s": round(r.wall_s, 3),
        "transcript": o.transcript,
    }


async def _eval_one(o: Options, team: Team, name: str, backend: Backend, out: Path) -> Metrics:
    problems = load_dataset(o.dataset or "", limit=o.limit)
    metrics, results = await evaluate(team, problems, backend, out, resume=o.resume, name=name)
    write_run_report(out, metrics, results, team.topology)
    return metrics


def _need_dataset(o: Options) -> str:
    if not o.dataset:
        raise ConfigError("dataset", "missing", "pass --dataset, e.g. --dataset arith:n=50 or gsm8k")
    return o.dataset


async def cmd_eval(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    load_dataset(_need_dataset(o), limit=o.limit)  # refuse bad data before starting an engine
    team = make_team(o)
    out = Path(o.out) if o.out else _default_out("eval")
    backend = make_backend(o)
    async with backend:
        m = await _eval_one(o, team, o.topology, backend, out)
    _print_compare(f"{o.dataset}: {m.n} problems", [(o.topology, m)])
    print(f"report: {out / 'report.md'}")
    return {**m.model_dump(), "report": str(out / "report.md"), "out": str(out)}


async def _compare(
    o: Options, specs: list[str], out: Path, title: str
) -> tuple[list[tuple[str, Metrics]], Path]:
    teams = [(s, make_team(o, s)) for s in specs]  # every topology is checked before the engine starts
    backend = make_backend(o)
    named: list[tuple[str, Metrics]] = []
    async with backend:
        for spec, team in teams:  # one after another, so each team's wall time is its own
            print(f"== {spec}: {team.describe()}", file=sys.stderr)
            named.append((spec, await _eval_one(o, team, spec, backend, out / spec.replace(":", "_"))))
    report = write_compare_report(out, title, named)
    _print_compare(title, named)
    print(f"report: {report}")
    return named, report


def _compare_json(named: Sequence[tuple[str, Metrics]], report: Path, dataset: str) -> dict[str, Any]:
    rows = [
        {
            "topology": n,
            "accuracy": m.accuracy,
            "ci95": [m.ci95_low, m.ci95_high],
            "n": m.n,
            "prompt_tokens_per_problem": m.prompt_tokens_per_problem,
            "completion_tokens_per_problem": m.completion_tokens_per_problem,
            "wall_s": m.wall_s,
            "agreement": m.agreement,
            "oracle": m.oracle,
            "maj_at_k": m.maj_at_k,
            "per_agent_accuracy": m.per_agent_accuracy,
        }
        for n, m in named
    ]
    return {"dataset": dataset, "rows": rows, "report": str(report)}


async def cmd_compare(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    dataset = _need_dataset(o)
    load_dataset(dataset, limit=o.limit)
    specs = [s.strip() for s in (o.topologies or "").split(",") if s.strip()]
    if not specs:
        raise ConfigError("topologies", "missing", "pass --topologies single,chain:3,full:3")
    out = Path(o.out) if o.out else _default_out("compare")
    named, report = await _compare(o, specs, out, f"{dataset} (limit {o.limit})")
    return _compare_json(named, report, dataset)


async def cmd_demo(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    n = o.limit or 8
    o = o.model_copy(
        update={
            "dataset": f"arith:ops=+,digits=2,n={n},seed={o.seed}",
            "limit": None,
            "rounds": 2,
            "max_tokens": 32,
            "topologies": DEMO_TOPOLOGIES,
        }
    )
    out = Path(o.out) if o.out else _default_out("demo")
    print(
        f"demo: {DEMO_TOPOLOGIES.replace(',', ', ')} on {n} generated arithmetic problems, "
        f"2 rounds, on {o.backend} ({o.model or 'embedded SmolLM2-135M-Instruct'})",
        file=sys.stderr,
    )
    named, report = await _compare(o, DEMO_TOPOLOGIES.split(","), out, f"demo: {o.dataset}")
    return _compare_json(named, report, o.dataset or "")


async def cmd_show(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    topo: Topology = from_spec(ns.topology_spec, role=o.role)
    gens = topo.generations()
    print(
        f"{topo.graph.get('name')}: {len(topo)} agents, {len(topo.edges_of('spatial'))} spatial edges, "
        f"{len(topo.edges_of('temporal'))} temporal edges"
    )
    for i, g in enumerate(gens):
        print(f"  generation {i}: " + ", ".join(f"{a} ({topo.role_of(a)})" for a in g))
    png = str(topo.draw(o.png)) if o.png else None
    if png:
        print(f"picture: {png}")
    return {
        "name": topo.graph.get("name"),
        "agents": len(topo),
        "spatial_edges": len(topo.edges_of("spatial")),
        "temporal_edges": len(topo.edges_of("temporal")),
        "generations": gens,
        "png": png,
    }


async def cmd_train_graph(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    from agentgraph.train import GraphGRPOConfig, GraphGRPOTrainer

    if not o.base:
        raise ConfigError("base", "missing", "pass --base, e.g. --base full:6")
    problems = load_dataset(_need_dataset(o), limit=o.limit)
    base = from_spec(o.base, role=o.role)
    make_team(o, o.base)  # checks rounds, policy, decision and roles against the base before training
    out = Path(o.out) if o.out else _default_out("train-graph")
    if (out / "checkpoint.pt").exists() and not o.resume:
        raise ConfigError(
            "out", f"{out} already holds a training run", "pass --resume or choose another --out"
        )
    config = GraphGRPOConfig(
        group_size=o.group,
        steps=o.steps,
        problems_per_step=o.problems_per_step,
        learning_rate=o.lr if o.lr is not None else 0.1,
        token_cost=o.token_cost,
        prune_threshold=o.prune_threshold,
        checkpoint_every=o.checkpoint_every,
        seed=o.seed,
    )
    backend = make_backend(o)
    async with backend:
        trainer = GraphGRPOTrainer(
            base, problems, backend, config, make_team=lambda t: make_team_from(o, t), out=out
        )
        pruned = await trainer.train(resume=o.resume, progress=True)
    probs = trainer.probabilities()
    for name, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        print(f"  {p:5.3f}  {name}")
    kept = len(pruned.edges(keys=True))
    print(f"pruned topology: {out / 'pruned.json'} ({kept} of {base.number_of_edges()} edges kept)")
    last = trainer.log[-1] if trainer.log else None
    return {
        "steps": trainer.step,
        "final_reward": last.reward if last else None,
        "final_tokens": last.tokens if last else None,
        "probabilities": probs,
        "edges_kept": kept,
        "edges_total": base.number_of_edges(),
        "pruned": str(out / "pruned.json"),
        "out": str(out),
    }


def _train_roles(o: Options) -> tuple[str, ...]:
    if not o.train_roles:
        raise ConfigError("train_roles", "missing", "pass --train-roles, e.g. --train-roles solver,critic")
    return tuple(r.strip() for r in o.train_roles.split(",") if r.strip())


def _role_config(o: Options) -> Any:
    from agentgraph.train import RoleGRPOConfig

    try:
        return RoleGRPOConfig(
            train_roles=_train_roles(o),
            group_size=o.group,
            problems_per_step=o.problems_per_step,
            steps=o.steps,
            learning_rate=o.lr if o.lr is not None else 5e-5,
            max_completion_length=o.max_tokens or 32,
            temperature=o.temperature if o.temperature is not None else 1.0,
            loss_type=o.loss_type,
            beta=o.beta,
            alpha=o.alpha,
            lora_r=o.lora_r,
            lora_alpha=2 * o.lora_r,
            eval_every=o.eval_every,
            time_limit_min=o.minutes,
            seed=o.seed,
        )
    except ValidationError as e:
        raise _validation_error(e, "") from None


def _fresh_out(o: Options, command: str, marker: str) -> Path:
    out = Path(o.out) if o.out else _default_out(command)
    if (out / marker).exists() and not o.resume:
        raise ConfigError(
            "out", f"{out} already holds a training run", "pass --resume or choose another --out"
        )
    return out


def _role_summary(trainer: Any, out: Path) -> dict[str, Any]:
    log = trainer.log
    curve = [[s, a] for s, a in trainer.evals]
    return {
        "steps": trainer.step,
        "accuracy_before": curve[0][1] if curve else None,
        "accuracy_after": curve[-1][1] if curve else None,
        "best": {"accuracy": trainer.best[0], "step": trainer.best[1]} if trainer.best else None,
        "curve": curve,
        "final_reward": log[-1].reward if log else None,
        "adapters": str(out),
        "out": str(out),
    }


async def cmd_train_roles(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    from agentgraph.train import RoleGRPOTrainer

    config = _role_config(o)
    problems = load_dataset(_need_dataset(o), limit=o.limit)
    heldout = load_dataset(o.heldout) if o.heldout else []
    team = make_team(o)
    out = _fresh_out(o, "train-roles", "checkpoint")
    backend = make_backend(o, lora_rank=config.lora_r, train=True)
    async with backend:
        trainer = RoleGRPOTrainer(team, problems, backend, config, heldout=heldout, model=o.model, out=out)
        await trainer.train(resume=o.resume, progress=True)
    print(f"adapters: {out / 'adapters.json'}  (serve them with --adapters {out})")
    return _role_summary(trainer, out)


async def cmd_train_joint(ns: argparse.Namespace, o: Options) -> dict[str, Any]:
    from agentgraph.train import GraphGRPOConfig, JointConfig, JointTrainer

    if not o.base:
        raise ConfigError("base", "missing", "pass --base, e.g. --base full:3")
    roles_config = _role_config(o)
    problems = load_dataset(_need_dataset(o), limit=o.limit)
    heldout = load_dataset(o.heldout) if o.heldout else []
    base = from_spec(o.base, role=o.role)
    make_team(o, o.base)
    out = _fresh_out(o, "train-joint", "roles/checkpoint")
    config = JointConfig(
        steps=o.steps,
        schedule=o.schedule,
        graph=GraphGRPOConfig(
            group_size=o.group,
            problems_per_step=o.problems_per_step,
            token_cost=o.token_cost,
            prune_threshold=o.prune_threshold,
            seed=o.seed,
        ),
        roles=roles_config,
    )
    backend = make_backend(o, lora_rank=roles_config.lora_r, train=True)
    async with backend:
        trainer = JointTrainer(
            base,
            problems,
            backend,
            config,
            make_team=lambda t: make_team_from(o, t),
            heldout=heldout,
            model=o.model,
            out=out,
        )
        pruned = await trainer.train(resume=o.resume, progress=True)
    summary = _role_summary(trainer.roles, out / "roles")
    summary.update(
        steps=trainer.step,
        probabilities=trainer.graph.probabilities(),
        edges_kept=len(pruned.edges(keys=True)),
        edges_total=base.number_of_edges(),
        pruned=str(out / "graph" / "pruned.json"),
        out=str(out),
    )
    return summary


def make_team_from(o: Options, topology: Topology) -> Team:
    roles = RoleBook.default().with_cards(*o.role_card) if o.role_card else RoleBook.default()
    overrides = SamplingOverrides(max_tokens=o.max_tokens, temperature=o.temperature)
    adapters = _load_adapters(o.adapters)[0] if o.adapters else None
    return Team(
        topology,
        adapters=adapters,
        rounds=o.rounds,
        inter_round=o.inter_round,
        decision=o.decision,
        roles=roles,
        early_stop=o.early_stop,
        sampling=overrides,
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, Options], Awaitable[dict[str, Any]]]] = {
    "run": cmd_run,
    "eval": cmd_eval,
    "compare": cmd_compare,
    "show": cmd_show,
    "demo": cmd_demo,
    "train:graph": cmd_train_graph,
    "train:roles": cmd_train_roles,
    "train:joint": cmd_train_joint,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        o = resolve_options(ns)
        command = f"train:{ns.target}" if ns.command == "train" else ns.command
        summary = asyncio.run(_with_signals(COMMANDS[command](ns, o)))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was written is kept (eval/compare: --resume continues)", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("terminated: what was written is kept (eval/compare: --resume continues)", file=sys.stderr)
        return 143
    if o.json_output:
        print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
