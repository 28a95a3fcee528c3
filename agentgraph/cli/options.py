"""The options of every command, one pydantic model per command, with one source of defaults and help.

Option groups (team, backend, dataset, output) are declared here with their help text. Trainer
options are *generated* from the library's configs (:mod:`agentgraph.train.config`): their type,
default, bounds and help are the config field's, under the CLI's shorter name where it has one
(``--group`` is ``group_size``, ``--lr`` is ``learning_rate``). A ``--config`` YAML file is validated
against the command's own model: a key that the command does not use is an error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentgraph.backends import Backend, create
from agentgraph.backends.priority import Scheduling
from agentgraph.core.errors import ConfigError, from_validation, read_yaml_mapping
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.core.thinking import Share
from agentgraph.eval.evaluation import run_dir
from agentgraph.graph.topology import Topology
from agentgraph.roles.book import RoleBook
from agentgraph.roles.presets import Preset, choose
from agentgraph.shapes.build import shape, team_of
from agentgraph.team.config import Overflow
from agentgraph.team.team import Team
from agentgraph.train.adapters import load_adapters


class Common(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    json_output: bool = Field(False, alias="json", description="end with one JSON object")


class TeamOptions(BaseModel):
    topology: str = Field(
        "full:3",
        description="single, chain:N, star:N, tree:BxD, full:N, layered:W-W, random:N:P, a .json file, "
        "or a test-time-scaling shape: sc:N, bon:N, beam:KxD[xB], cascade:A+B[+C]",
    )
    role: str = Field("solver", description="role of the builder's agents")
    rounds: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="rounds, every agent speaks once per round (default 2; sc, bon and beam fix their own)",
    )
    inter_round: str = Field("full", description="full | partial[:K[:SCORE]] | summarize")
    decision: str | None = Field(
        None,
        description="majority | weighted | judge | chain_tail | tree_root | best_score "
        "(default majority; bon and beam: best_score)",
    )
    min_agreement: float = Field(
        1.0, ge=0.0, le=1.0, description="cascade: escalate when fewer of a stage's answers agree"
    )
    min_score: float | None = Field(
        None, description="cascade: escalate when a graded stage's best score is lower (default: off)"
    )
    early_stop: bool = Field(False, description="stop once every agent gives the same parseable answer")
    max_tokens: int | None = Field(None, ge=1, le=100_000, description="new tokens per turn (role default)")
    temperature: float | None = Field(
        None, ge=0.0, le=10.0, description="sampling temperature (role default)"
    )
    role_card: list[str] = Field(default_factory=list, description="extra role card YAML (repeatable)")
    share: str = Field("final", description="what agents read of each other: final | answer | full")
    think: str = Field("auto", description="think markers: auto (from the chat template) | none | OPEN,CLOSE")
    thinking_budget: str | None = Field(
        None, description="most thinking tokens per turn, e.g. 256, or one per round: 64,256"
    )
    answer_tokens: int | None = Field(
        None, ge=1, le=100_000, description="new tokens after the thinking (default 256)"
    )
    overflow: str = Field(
        "truncate-peers", description="a prompt over the context: truncate-peers | fail-session"
    )

    def team(
        self,
        topology: Topology,
        adapters: str | None = None,
        preset: Preset | None = None,
        models: dict[str, Any] | None = None,
    ) -> Team:
        return team_of(topology, self.rounds, **self.team_settings(adapters, preset), **(models or {}))

    def team_settings(self, adapters: str | None = None, preset: Preset | None = None) -> dict[str, Any]:
        """Every :class:`Team` argument but the topology and rounds (shapes fix their own rounds)."""
        roles = RoleBook.default().with_cards(*self.role_card) if self.role_card else RoleBook.default()
        return dict(
            adapters=load_adapters(adapters)[0] if adapters else None,
            inter_round=self.inter_round,
            decision=self.decision,
            roles=roles,
            early_stop=self.early_stop,
            sampling=self.sampling(),
            share=cast(Share, self.share),
            think=self.think,
            overflow=cast(Overflow, self.overflow),
            preset=preset,
        )

    def sampling(self) -> SamplingOverrides:
        budget: int | tuple[int, ...] | None = None
        if self.thinking_budget is not None:
            try:
                values = tuple(int(b) for b in self.thinking_budget.split(","))
            except ValueError:
                raise ConfigError(
                    "thinking_budget",
                    f"{self.thinking_budget!r} is not a number of tokens",
                    "e.g. 256 or 64,256",
                ) from None
            budget = values[0] if len(values) == 1 else values
        try:
            return SamplingOverrides(
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                thinking_budget=budget,
                answer_tokens=self.answer_tokens,
            )
        except ValidationError as e:
            raise from_validation(e, "", "e.g. --thinking-budget 256") from None


class BackendOptions(BaseModel):
    backend: str = Field("vllm", description="vllm (in-process) | openai | scripted")
    model: str | None = Field(
        None, description="HF id or local path (default: the embedded SmolLM2-135M-Instruct)"
    )
    endpoint: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; MODEL=URL for the "
        "servers of a --role-model (repeatable)",
    )
    role_model: list[str] = Field(
        default_factory=list,
        description="ROLE=MODEL: that role's agents run on MODEL, with its own preset (repeatable); "
        "the other agents run on --model",
    )
    tokenizer: str | None = Field(
        None, description="openai: the served model's tokenizer, when its directory is not on this machine"
    )
    scripted: str | None = Field(None, description="for --backend scripted: module:function agent")
    scheduling: Scheduling = Field(
        "fcfs",
        description="how the engine orders requests: fcfs, or by session (session-age, session-progress, "
        "least-served); a fleet's servers need --scheduling-policy priority",
    )
    seed: int = Field(0, ge=0, description="engine and sampling seed")
    preset: str = Field(
        "auto",
        description="model authors' settings: auto (by --model) | none | r1-distill | qwen3 | qwen2.5-math",
    )
    max_model_len: int | None = Field(
        None, ge=16, description="context length in tokens (the preset's: 2048)"
    )
    adapters: str | None = Field(
        None, description="a role-training run (train roles --out) whose adapters the roles use"
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0, description="vllm: share of GPU memory the engine may take (0.85)"
    )
    tensor_parallel_size: int | None = Field(None, ge=1, description="vllm: GPUs per model replica")
    data_parallel_size: int | None = Field(None, ge=1, description="vllm: model replicas")
    dtype: str | None = Field(None, description="vllm: auto | bfloat16 | float16 | float32")
    enforce_eager: bool | None = Field(None, description="vllm: no CUDA graphs (default: eager on CPU only)")
    max_num_seqs: int | None = Field(None, ge=1, description="vllm: sequences per engine step (256)")
    kv_cache_dtype: str | None = Field(None, description="vllm: auto | fp8 | ... (KV-cache precision)")
    chat_template: str | None = Field(
        None, description="vllm: a chat template file used instead of the model's"
    )
    engine_arg: list[str] = Field(
        default_factory=list, description="vllm: any other engine argument, KEY=VALUE (checked by vLLM)"
    )
    verbose: bool = Field(False, description="show engine logs in the terminal (default: a log file)")

    def model_preset(self) -> Preset:
        return choose(self.preset, self.model)

    def role_models(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for spec in self.role_model:
            role, _, model = spec.partition("=")
            if not role.strip() or not model.strip():
                raise ConfigError(
                    "role_model", f"{spec!r} is not ROLE=MODEL", "e.g. --role-model critic=Qwen/Qwen3-1.7B"
                )
            out[role.strip()] = model.strip()
        return out

    def team_models(self) -> dict[str, Any]:
        """The team's ``role_models`` and, per model, its preset (by family unless --preset names one)."""
        rm = self.role_models()
        presets = {m: choose(self.preset, m) for m in rm.values()}
        return {"role_models": rm or None, "presets": presets or None}

    def make_backend(
        self, *, lora_rank: int | None = None, train: bool = False, out: Path | None = None
    ) -> Backend:
        """LoRA is on when adapters are served (``--adapters``) or trained (``lora_rank``). The
        engine's own output goes to ``engine.log`` in the run directory ``out`` unless ``--verbose``."""
        if self.adapters and self.backend not in ("vllm", "openai"):
            raise ConfigError(
                "adapters",
                f"the {self.backend} backend does not serve our adapters",
                "use --backend vllm, or openai with vllm serve --enable-lora",
            )
        if self.adapters and lora_rank is None:
            lora_rank = load_adapters(self.adapters)[1]
        engine = {
            k: getattr(self, k)
            for k in (
                "gpu_memory_utilization",
                "tensor_parallel_size",
                "data_parallel_size",
                "dtype",
                "enforce_eager",
                "max_num_seqs",
                "kv_cache_dtype",
                "chat_template",
            )
        }
        if self.backend == "vllm" and not self.verbose:
            engine["log_file"] = (out or run_dir("run")) / "engine.log"
        backend = create(
            self.backend,
            model=self.model,
            seed=self.seed,
            max_model_len=self.max_model_len or self.model_preset().max_model_len,
            endpoints=self.endpoint,
            scripted=self.scripted,
            lora_rank=lora_rank,
            policy_tokens=train,
            engine=engine,
            engine_args=self.engine_arg,
            models=list(self.role_models().values()),
            tokenizer=self.tokenizer,
            scheduling=self.scheduling,
        )
        if engine.get("log_file"):  # after every check passed: a refused input prints one line
            print(f"engine log: {engine['log_file']} (--verbose shows it here)", file=sys.stderr)
        return backend


class Solve(Common, TeamOptions, BackendOptions):
    def make_team(self, spec: str | None = None) -> Team:
        """A team from a topology or shape spec (``cascade:…`` included) with these options."""
        return shape(
            spec or self.topology,
            role=self.role,
            rounds=self.rounds,
            min_agreement=self.min_agreement,
            min_score=self.min_score,
            **self.team_settings(self.adapters, self.model_preset()),
            **self.team_models(),
        )


class RunOptions(Solve):
    gold: str | None = Field(None, description="the right answer, if known")
    transcript: str | None = Field(None, description="write the JSONL transcript here")


class DataOptions(BaseModel):
    dataset: str | None = Field(
        None, description="gsm8k | math500 | svamp | mawps-singleop | arith:... | FILE.jsonl | hf:NAME"
    )
    limit: int | None = Field(None, ge=1, description="first N problems")
    out: str | None = Field(None, description="run directory (default runs/<command>-<time>)")
    resume: bool = Field(False, description="continue the run in --out")


class EvalOptions(Solve, DataOptions):
    pass


class BudgetOptions(BaseModel):
    budget: Literal["matched", "none"] = Field(
        "matched",
        description="matched: also run self-consistency at each team's measured tokens per problem "
        "and report the paired difference | none",
    )
    match_on: Literal["total", "completion"] = Field(
        "total", description="tokens matched: total (prompt + completion) | completion"
    )
    max_samples: int = Field(64, ge=1, le=4096, description="most self-consistency samples per problem")


class CompareOptions(Solve, DataOptions, BudgetOptions):
    topologies: str | None = Field(
        None, description="comma-separated specs, e.g. single,sc:5,bon:4,full:3,beam:2x2,cascade:sc:3+full:3"
    )


class ServeOptions(Solve):
    name: str | None = Field(None, description="the model name clients send (default: the --topology spec)")
    teams: str | None = Field(
        None,
        description="YAML file of several teams: name -> team options (topology, rounds, decision, ...), "
        "each over the flags given here",
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    out: str | None = Field(
        None, description="run directory: engine.log, transcripts.jsonl (default runs/serve-<time>)"
    )
    max_concurrency: int | None = Field(
        None,
        ge=1,
        description="sessions at once; more get 429 (default: no limit, the engine's queue bounds them)",
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 above)")
    request_timeout: float | None = Field(
        None,
        gt=0,
        description="seconds a request may take; then a 504 and its session recorded as cancelled "
        "(default: no limit)",
    )

    def served_teams(self) -> dict[str, Team]:
        """name -> team, every one checked before the engine starts."""
        if not self.teams:
            return {self.name or self.topology: self.make_team()}
        spec = read_yaml_mapping(Path(self.teams), "teams", "name: {topology: full:3, rounds: 2}")
        mine = self.model_dump(exclude={"teams", "name"}, by_alias=False)
        out: dict[str, Team] = {}
        for name, options in spec.items():
            if not isinstance(options, dict):
                raise ConfigError(
                    f"teams.{name}", "is not a mapping of team options", "e.g. {topology: sc:5}"
                )
            try:
                one = ServeOptions.model_validate({**mine, **options})
            except ValidationError as e:
                raise from_validation(e, f"teams.{name}.", "keys are the team option names") from None
            out[str(name)] = one.make_team()
        if not out:
            raise ConfigError("teams", f"{self.teams} names no team", "name: {topology: full:3, rounds: 2}")
        return out


class ViewOptions(Common):
    out: str | None = Field(None, description="write the page here (default RUN/view.html)")
    serve: bool = Field(False, description="also serve it on localhost until Ctrl-C")
    port: int = Field(8001, ge=0, le=65535, description="with --serve: the port on 127.0.0.1")


class DemoOptions(Common, BackendOptions, BudgetOptions):
    limit: int | None = Field(None, ge=1, description="problems (default 8)")
    out: str | None = Field(None, description="run directory (default runs/demo-<time>)")


class ShowOptions(Common):
    role: str = Field("solver", description="role of the builder's agents")
    model: str | None = Field(None, description="also show the preset this model gets")
    preset: str = Field("auto", description="auto (by --model) | none | a preset name")
    png: str | None = Field(None, description="write a picture here")
