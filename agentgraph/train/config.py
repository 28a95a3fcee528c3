"""Every trainer setting, with its help text (the CLI's options and help are generated from these).

Grouped as TRL's ``GRPOConfig`` groups its fields: the rollout (what is sampled), the reward and
its credit, the optimisation, the model (LoRA), and the run (evaluation, checkpoints, time). Names
follow TRL where the two overlap (``learning_rate``, ``beta``, ``epsilon``, ``loss_type``,
``scale_rewards``, ``max_completion_length``, ``temperature``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from agentgraph.core.errors import ConfigError
from agentgraph.graph.topology import EdgeKind

# here, not in loss.py: the configs stay importable without torch
LossType = Literal["grpo", "dapo", "dr_grpo"]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ScaleRewards = Literal["group", "batch", "none"]
ReportTo = Literal["none", "tensorboard", "wandb"]
REPORT_TO_HELP = "where step figures go besides log.jsonl: none | tensorboard (OUT/tensorboard) | wandb"
SHARED_ADAPTER = "shared"  # the adapter's name under shared_policy
REWARD_HELP = (
    "what rollouts are rewarded against: gold (the dataset's answers) | consensus (label-free: the "
    "plurality answer of a problem's rollouts in the step; ties give no signal) | module:function "
    "(your function of the session result: a float, or {turn id: float})"
)


BUILT_IN_REWARDS = ("gold", "consensus")
MIN_SHARE_HELP = (
    "consensus only: the share of a problem's rollouts its plurality answer needs to become the "
    "pseudo-label; a problem below it gives no signal, like a tie (0: any unique plurality, TTRL)"
)


def check_reward(spec: str) -> str:
    """``spec`` if it names a reward (``gold``, ``consensus`` or ``module:function``); else a
    ConfigError. The function itself is imported by :func:`agentgraph.train.rewards.load`."""
    module, colon, name = spec.partition(":")
    if spec in BUILT_IN_REWARDS or (colon and module and name.isidentifier()):
        return spec
    raise ConfigError("reward", f"{spec!r} is not a reward", "use gold, consensus or module:function")


Reward = Annotated[str, AfterValidator(check_reward)]


def check_min_share(reward: str, min_share: float) -> None:
    """A consensus threshold is refused for a reward that has no consensus (it would be ignored)."""
    if min_share and reward != "consensus":
        raise ConfigError(
            "consensus_min_share",
            f"a threshold for consensus labels, but the reward is {reward!r}",
            "use reward=consensus, or drop consensus_min_share",
        )


class GraphGRPOConfig(BaseModel):
    """Settings for :class:`~agentgraph.train.GraphGRPOTrainer`.

    Examples
    --------
    The defaults (G = 8, 4 problems per step, 100 steps, the final graph selected on 200 problems
    and picked among the search's finalists on 600 more) reach the truthful-only oracle within
    0.003 on every seed of all six settings of the persuadable adversarial grid
    (docs/benchmarks.md, "The grid met: stars and a held-out pick").

    >>> GraphGRPOConfig(group_size=4).learning_rate
    0.1
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _min_share_needs_consensus(self) -> Self:
        check_min_share(self.reward, self.consensus_min_share)
        return self

    # rollout
    group_size: int = Field(8, ge=2, description="graphs sampled per problem (G)")
    problems_per_step: int = Field(4, ge=1, description="problems per optimizer step")
    learn: tuple[EdgeKind, ...] = Field(("spatial", "temporal"), description="edge kinds whose logits learn")
    init_logit: float = Field(0.0, description="starting logit of every learnable edge (0: p = 0.5)")
    agent_dropout: bool = Field(False, description="also learn a keep-logit per agent (AgentDropout-style)")
    fixed_agents: tuple[str, ...] = Field((), description="agents never dropped (e.g. a decision node)")
    # reward and credit
    reward: Reward = Field("gold", description=REWARD_HELP)
    consensus_min_share: float = Field(0.0, ge=0, le=1, description=MIN_SHARE_HELP)
    token_cost: float = Field(0.0, ge=0, description="λ: reward −= λ · tokens / 1000")
    baseline: Literal["group", "none"] = Field(
        "group", description="group: (r − mean) / (std + eps) per problem; none: GPTSwarm's plain REINFORCE"
    )
    eps: float = Field(1e-4, gt=0, description="added to the group's std")
    credit: Literal["session", "leave-one-out"] = Field(
        "session",
        description="session: every edge of a sampled graph shares the graph's advantage; "
        "leave-one-out: an edge is credited with the difference reward r(g) − r(g without v) of the "
        "agent v whose turn it changes (its head; its tail when the head is the root, marked root=True), "
        "normalised over the G graphs — each graph is run again without each such agent under the same "
        "session id (common random numbers), so a step costs (agents + 1)× the sessions",
    )
    entropy_coef: float = Field(
        0.0, ge=0, description="bonus on the mean Bernoulli entropy of the keep-probabilities"
    )
    explore: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="ε: each edge is sampled with probability ε + (1 − 2ε)·sigmoid(logit), and the "
        "policy gradient uses that probability, so no edge is ever cut or kept for sure while learning "
        "(a cut edge still earns credit; pruning and selection read sigmoid(logit))",
    )
    # optimisation
    steps: int = Field(100, ge=1, description="optimizer steps")
    learning_rate: float = Field(0.1, gt=0, description="Adam learning rate on the logits")
    # pruning
    prune_threshold: float | None = Field(0.5, ge=0, le=1, description="final graph: edges with p ≥ this")
    prune_keep: int | None = Field(None, ge=0, description="final graph: the k most probable edges instead")
    prune_ratio: float | None = Field(
        None, gt=0, lt=1, description="iterative pruning: drop this share of the active edges (AgentPrune ρ)"
    )
    prune_every: int = Field(0, ge=0, description="iterative pruning every N steps (0: never)")
    select_problems: int = Field(
        200,
        ge=0,
        description="final graph: chosen on this many training problems (the best of the most-probable-k "
        "graphs, then edges added and removed one at a time while that helps; about (nested + "
        "select_rounds × edges) × this many sessions); "
        "0: threshold / top-k alone",
    )
    select_se: float = Field(
        0.0,
        ge=0,
        description="final graph: an edge stays or comes back only when it raises the selection reward "
        "by more than this many standard errors of the paired difference (0: any gain)",
    )
    select_rounds: int = Field(
        2, ge=1, description="final graph: rounds of adding then removing edges one at a time (stops early)"
    )
    select_holdout: int | None = Field(
        None,
        ge=0,
        description="final graph: the selection's finalists (the graph after each of its stages) are "
        "run on this many further training problems, drawn apart from select_problems, and the best "
        "of them is kept (0: the search's own choice; unset: 3 × select_problems, or as many as the "
        "training set has left, none when it has none)",
    )
    select_min_p: float = Field(
        0.2, ge=0, le=1, description="graphs tried by select_problems stop at edges below this probability"
    )
    # run
    checkpoint_every: int = Field(20, ge=1, description="steps between checkpoints")
    report_to: ReportTo = Field("none", description=REPORT_TO_HELP)
    seed: int = Field(0, ge=0, description="seed of graph sampling and problem draws")


class RoleGRPOConfig(BaseModel):
    """Settings for :class:`~agentgraph.train.RoleGRPOTrainer`.

    Examples
    --------
    >>> RoleGRPOConfig(lora_r=8).lora_alpha  # 2·r unless given
    16
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _min_share_needs_consensus(self) -> Self:
        check_min_share(self.reward, self.consensus_min_share)
        return self

    # rollout
    train_roles: tuple[str, ...] = Field(("solver",), min_length=1, description="roles that get an adapter")
    group_size: int = Field(4, ge=2, description="sessions per problem (G)")
    problems_per_step: int = Field(8, ge=1, description="problems per optimizer step")
    temperature: float = Field(1.0, gt=0, description="rollout temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="rollout top-p (the trainer scores the same nucleus)")
    top_k: int | None = Field(None, ge=1, description="rollout top-k (the trainer scores under the same)")
    max_completion_length: int = Field(32, ge=1, description="new tokens per turn in rollouts")
    # reward and credit
    reward: Reward = Field("gold", description=REWARD_HELP)
    consensus_min_share: float = Field(0.0, ge=0, le=1, description=MIN_SHARE_HELP)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the team outcome in a turn's reward")
    format_reward: float = Field(0.0, ge=0, description="added when the turn's answer parses")
    scale_rewards: ScaleRewards = Field(
        "group", description="divide advantages by the group's std, the batch's, or nothing (TRL)"
    )
    drop_zero_variance: bool = Field(True, description="drop groups whose rewards are all equal")
    # optimisation
    steps: int = Field(20, ge=1, description="optimizer steps")
    learning_rate: float = Field(5e-5, gt=0, description="AdamW learning rate on the adapters")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    loss_type: LossType = Field("dapo", description="dapo | grpo | dr_grpo (TRL's normalisations)")
    epsilon: float = Field(0.2, gt=0, description="ε_low of the clipped ratio")
    epsilon_high: float | None = Field(None, gt=0, description="ε_high; default ε_low")
    beta: float = Field(0.0, ge=0, description="k3 KL coefficient to the base model")
    kl_every: int = Field(
        5, ge=0, description="with β = 0, measure KL to the base every N steps (a no-grad forward); 0: never"
    )
    micro_batch: int = Field(16, ge=1, description="turns per forward/backward (gradients accumulate)")
    importance_sampling: Literal["truncate", "mask", "none"] = Field(
        "truncate",
        description="engine/trainer mismatch: weight tokens by min(π_trainer/π_engine, cap), mask those "
        "above the cap, or ignore it",
    )
    importance_sampling_cap: float = Field(3.0, gt=1, description="the cap of the importance weights")
    logprob_chunk: int = Field(
        1024, ge=16, description="token positions per language-model-head chunk (peak memory ∝ chunk × vocab)"
    )
    # model
    shared_policy: bool = Field(
        False,
        description="one LoRA adapter trained and served for every trained role (the specialisation "
        "ablation); off: one adapter per role",
    )
    lora_r: int = Field(16, ge=1, le=256, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA α (default 2·lora_r)")
    lora_targets: tuple[str, ...] = Field(LORA_TARGETS, description="modules that get LoRA weights")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="trainer weights and autocast: auto = bfloat16 on CUDA, float32 on the CPU"
    )
    gradient_checkpointing: bool | None = Field(
        None, description="recompute activations in backward (default: on with CUDA, off on the CPU)"
    )
    # run
    eval_every: int = Field(5, ge=0, description="held-out evaluation every N steps (0: only at the ends)")
    eval_temperature: float = Field(0.0, ge=0, description="sampling temperature of held-out evaluation")
    keep_best: bool = Field(True, description="keep the adapters with the best held-out accuracy (best/)")
    guard: Literal["rollback", "none"] = Field(
        "rollback",
        description="rollback: when held-out accuracy falls rollback_drop below the best, restore the "
        "best adapters, clear the optimizer's moments and scale the learning rate (needs held-out "
        "problems and eval_every)",
    )
    rollback_drop: float = Field(0.05, ge=0, le=1, description="accuracy drop below the best that rolls back")
    rollback_lr_factor: float = Field(0.5, gt=0, le=1, description="learning-rate factor at each rollback")
    checkpoint_every: int = Field(1, ge=1, description="steps between checkpoints")
    keep_versions: int = Field(2, ge=1, description="served adapter versions kept on disk")
    time_limit_min: float | None = Field(None, gt=0, description="stop after this many minutes of training")
    report_to: ReportTo = Field("none", description=REPORT_TO_HELP)
    seed: int = Field(0, ge=0, description="seed of problem draws and torch")

    @property
    def adapters(self) -> tuple[str, ...]:
        """The adapters trained: one per role, or the one shared by all (``shared_policy``)."""
        return (SHARED_ADAPTER,) if self.shared_policy else self.train_roles

    def adapter_of(self, role: str) -> str:
        """The adapter ``role`` is trained and served as."""
        return SHARED_ADAPTER if self.shared_policy else role

    @model_validator(mode="before")
    @classmethod
    def _alpha_follows_rank(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("lora_alpha") is None:
            return {**data, "lora_alpha": 2 * int(data.get("lora_r", 16))}
        return data


class JointConfig(BaseModel):
    """Settings for :class:`~agentgraph.train.JointTrainer`: the two learners' configs and the schedule.

    ``steps`` overrides both learners' own ``steps``.
    """

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, description="joint steps")
    schedule: Literal["shared", "alternate"] = Field(
        "shared", description="shared: one rollout feeds both updates; alternate: graph and roles take turns"
    )
    graph: GraphGRPOConfig = Field(default_factory=GraphGRPOConfig, description="the graph learner")
    roles: RoleGRPOConfig = Field(default_factory=RoleGRPOConfig, description="the role learner")
