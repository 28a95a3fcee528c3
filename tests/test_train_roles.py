"""Role GRPO: TRL's loss to 1e-6, group credit, shared-prompt log-probs, scripted end to end, resume."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer, grpo_loss
from agentgraph.train.adapters import load_adapters
from agentgraph.train.credit import group_advantages
from agentgraph.train.policies.lora import Sample
from examples.train_roles_arith import additions, make_team
from tests.conftest import ON_GPU


class _Accelerator:
    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def reduce(x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return x


def trl_loss(
    loss_type: str,
    logps: torch.Tensor,
    old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float = 0.0,
    ref: torch.Tensor | None = None,
    eps: tuple[float, float] = (0.2, 0.28),
    max_len: int = 7,
) -> torch.Tensor:
    """The value TRL's own ``GRPOTrainer._compute_loss`` computes on these tensors (one process,
    no gradient accumulation, one step per generation)."""
    from trl import GRPOTrainer

    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        loss_type=loss_type,
        epsilon_low=eps[0],
        epsilon_high=eps[1],
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_len,
        accelerator=_Accelerator(),
        _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    b, t = logps.shape
    inputs: dict[str, Any] = {
        "prompt_ids": torch.zeros((b, 1), dtype=torch.long),
        "prompt_mask": torch.ones((b, 1), dtype=torch.long),
        "completion_ids": torch.zeros((b, t), dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": adv,
        "old_per_token_logps": old,
        "num_items_in_batch": mask.sum(),
    }
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    result: torch.Tensor = GRPOTrainer._compute_loss(stub, None, inputs)  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_equals_trl(loss_type: str, beta: float) -> None:
    g = torch.Generator().manual_seed(7)
    b, t = 6, 7
    logps = -torch.rand((b, t), generator=g) * 3
    old = logps + 0.4 * torch.randn((b, t), generator=g)  # ratios far enough from 1 to clip
    ref = logps + 0.3 * torch.randn((b, t), generator=g)
    adv = torch.randn(b, generator=g)
    lengths = torch.tensor([7, 3, 5, 1, 6, 2])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    ours = grpo_loss(
        logps,
        old,
        adv,
        mask,
        loss_type=loss_type,  # type: ignore[arg-type]
        epsilon_low=0.2,
        epsilon_high=0.28,
        beta=beta,
        ref_per_token_logps=ref if beta else None,
        max_completion_length=t,
    )
    theirs = trl_loss(loss_type, logps, old, adv, mask, beta=beta, ref=ref if beta else None, max_len=t)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-6)
    # a micro-batch split with whole-batch normalisers sums to the whole-batch value
    parts = [
        grpo_loss(
            logps[s],
            old[s],
            adv[s],
            mask[s],
            loss_type=loss_type,  # type: ignore[arg-type]
            epsilon_low=0.2,
            epsilon_high=0.28,
            beta=beta,
            ref_per_token_logps=ref[s] if beta else None,
            max_completion_length=t,
            num_sequences=b,
            num_items=float(mask.sum()),
        )
        for s in (slice(0, 2), slice(2, 6))
    ]
    assert float(sum(parts)) == pytest.approx(float(theirs), abs=1e-6)


def test_group_advantages_normalise_within_groups_and_drop_flat_ones() -> None:
    config = RoleGRPOConfig(train_roles=("solver",))
    groups = {
        (0, "solver", 0): [("a", 1.0), ("b", 0.0), ("c", 0.5), ("d", 0.5)],
        (1, "solver", 0): [("e", 1.0), ("f", 1.0)],  # every session right: no signal
        (0, "solver", 1): [("g", 0.0), ("h", 1.0)],
    }
    adv, kept, dropped = group_advantages(groups, config)
    assert (kept, dropped) == (2, 1) and "e" not in adv and "f" not in adv
    first = np.array([adv[k] for k in "abcd"])
    assert first.mean() == pytest.approx(0.0, abs=1e-9)
    assert first.std(ddof=1) == pytest.approx(1.0, abs=1e-3)
    assert adv["a"] > adv["c"] > adv["b"]
    raw, _, _ = group_advantages(groups, config.model_copy(update={"scale_rewards": "none"}))
    assert raw["a"] == pytest.approx(0.5) and raw["g"] == pytest.approx(-0.5)


def adder(call: ScriptedCall) -> str:
    """Right two times in three, seeded per session: the groups have variance."""
    a, b = (int(x) for x in call.problem.split("What is ")[1].rstrip("?").split(" + "))
    return str(a + b) if call.rng.random() < 0.67 else str(a + b + 1)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from agentgraph.core.models import provision

    return AutoTokenizer.from_pretrained(provision())


def scripted_trainer(tokenizer: Any, out: Path | None, steps: int = 3) -> RoleGRPOTrainer:
    backend = Scripted(default=adder, seed=1, tokenizer=tokenizer)
    config = RoleGRPOConfig(
        train_roles=("adder", "checker"),
        group_size=4,
        problems_per_step=2,
        steps=steps,
        learning_rate=1e-3,
        lora_r=4,
        lora_alpha=8,
        kl_every=1,
        eval_every=2,
    )
    return RoleGRPOTrainer(make_team(), additions(20, 0), backend, config, heldout=additions(4, 9), out=out)


def padded_logps(t: RoleGRPOTrainer, batch: list[Sample]) -> torch.Tensor:
    """The plain way — one right-padded sequence per turn — the reference for ``_logps``."""
    from trl.trainer.utils import selective_log_softmax

    width = max(len(s.prompt_ids) + len(s.completion_ids) for s in batch)
    t_max = max(len(s.completion_ids) for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for i, s in enumerate(batch):
        seq = s.prompt_ids + s.completion_ids
        ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
    logits = t.policy.model(input_ids=ids, attention_mask=attn).logits / t.config.temperature
    rows, targets = [], torch.zeros((len(batch), t_max), dtype=torch.long)
    for i, s in enumerate(batch):
        p, n = len(s.prompt_ids), len(s.completion_ids)
        rows.append(torch.nn.functional.pad(logits[i, p - 1 : p - 1 + n], (0, 0, 0, t_max - n)))
        targets[i, :n] = torch.tensor(s.completion_ids)
    return selective_log_softmax(torch.stack(rows), targets)


def test_shared_prompt_logprobs_equal_padded_ones(tokenizer: Any) -> None:
    t = scripted_trainer(tokenizer, None)
    with torch.no_grad():
        for n, p in t.policy.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)  # a non-trivial adapter
    enc = tokenizer.apply_chat_template
    p1 = enc(
        [{"role": "user", "content": "What is 3 + 4?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )
    p2 = enc(
        [{"role": "user", "content": "What is 13 + 24?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )
    batch = [
        Sample("adder", p1["input_ids"], [22, 33, 2], None, 1.0),
        Sample("adder", p1["input_ids"], [25], None, -1.0),
        Sample("adder", p2["input_ids"], [7, 8, 9, 10], None, 1.0),
        Sample("adder", p1["input_ids"], [22, 34, 5, 6, 7], None, 0.5),
    ]
    t.policy.model.set_adapter("adder")
    shared, mask = t.policy.logps(batch)
    padded = padded_logps(t, batch)
    assert torch.allclose(shared * mask, padded * mask, atol=1e-4)
    assert mask.sum(-1).tolist() == [3, 1, 4, 5]


async def test_scripted_team_trains_both_roles_end_to_end(tokenizer: Any, tmp_path: Path) -> None:
    t = scripted_trainer(tokenizer, tmp_path)
    before = {r: [p.detach().clone() for p in ps] for r, ps in t.policy.params.items()}
    log = await t.train()
    assert [x.step for x in log] == [1, 2, 3]
    assert all(x.turns > 0 and x.groups_kept > 0 and x.kl is not None for x in log)
    for r, ps in t.policy.params.items():  # each role's own adapter moved
        assert any(not torch.equal(a, b) for a, b in zip(ps, before[r], strict=True)), r
    assert [s for s, _ in t.evals] == [0, 2, 3]
    adapters, rank = load_adapters(tmp_path)
    assert set(adapters) == {"adder", "checker"} and rank == 4
    assert all(Path(a.path, "adapter_model.safetensors").is_file() for a in adapters.values())
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


async def test_guard_rolls_a_falling_run_back_to_its_best(tokenizer: Any, tmp_path: Path) -> None:
    t = scripted_trainer(tokenizer, tmp_path, steps=2)
    t.config = t.config.model_copy(update={"eval_every": 1})
    measured = iter([0.50, 0.75, 0.25])  # start, step 1 (the best), step 2 (a collapse)
    at_best: dict[str, list[torch.Tensor]] = {}

    async def evaluate(problems: Any = None) -> float:
        acc = next(measured)
        if acc == 0.75:
            at_best.update({r: [p.detach().clone() for p in ps] for r, ps in t.policy.params.items()})
        return acc

    t.evaluate = evaluate  # type: ignore[method-assign]
    lr = t.policy.optimizer.param_groups[0]["lr"]
    log = await t.train()
    assert [x.rolled_back for x in log] == [False, True] and t.guard is not None and t.guard.rollbacks == [2]
    for r, ps in t.policy.params.items():  # step 2's update is undone: the step-1 adapters are back
        assert all(torch.equal(a, b) for a, b in zip(ps, at_best[r], strict=True)), r
    assert t.policy.optimizer.param_groups[0]["lr"] == pytest.approx(lr * t.config.rollback_lr_factor)
    assert [a for _, a in t.evals] == [0.50, 0.75, 0.25]  # the curve shows the fall it reacted to


async def test_resume_continues_exactly(tokenizer: Any, tmp_path: Path) -> None:
    whole = scripted_trainer(tokenizer, tmp_path / "a", steps=3)
    await whole.train()
    first = scripted_trainer(tokenizer, tmp_path / "b", steps=2)
    await first.train()
    again = scripted_trainer(tokenizer, tmp_path / "b", steps=3)
    await again.train(resume=True)
    assert [x.step for x in again.log] == [1, 2, 3]
    for r in whole.policy.params:
        for a, b in zip(whole.policy.params[r], again.policy.params[r], strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3


async def test_joint_training_shares_rollouts_on_scripted(tokenizer: Any, tmp_path: Path) -> None:
    import agentgraph as ag
    from agentgraph.graph.generators import full
    from agentgraph.train import GraphGRPOConfig, JointConfig, JointTrainer

    base = full(3)
    config = JointConfig(
        steps=2,
        graph=GraphGRPOConfig(group_size=4, problems_per_step=1, learning_rate=0.5),
        roles=RoleGRPOConfig(
            train_roles=("solver",), group_size=4, lora_r=2, lora_alpha=4, learning_rate=1e-3
        ),
    )
    backend = Scripted(default=adder, seed=2, tokenizer=tokenizer)
    trainer = JointTrainer(
        base,
        additions(20, 0),
        backend,
        config,
        make_team=lambda t: ag.Team(t, rounds=2),
        heldout=additions(2, 5),
        out=tmp_path,
    )
    before = trainer.graph.logits.detach().clone()
    adapters_before = [p.detach().clone() for p in trainer.roles.policy.params["solver"]]
    pruned = await trainer.train()
    assert [e.step for e in trainer.log] == [1, 2]
    assert [s for s, _ in trainer.roles.evals] == [0, 2]  # the held-out curve starts before training
    assert all(e.graph is not None and e.roles is not None for e in trainer.log)
    # the role update used the graph step's sessions: as many turns as those sessions had
    assert all(e.roles is not None and e.roles.turns > 0 for e in trainer.log)
    assert not torch.equal(trainer.graph.logits.detach(), before)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(trainer.roles.policy.params["solver"], adapters_before, strict=True)
    )
    assert (tmp_path / "graph" / "pruned.json").is_file() and (tmp_path / "roles" / "adapters.json").is_file()
    assert set(pruned.agents) <= set(base.agents)


def test_cli_train_roles_on_scripted_then_eval_reads_adapters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from agentgraph.cli import main

    out = tmp_path / "r"
    common = ["--backend", "scripted", "--scripted", "tests.test_train_roles:adder", "--topology", "chain:2"]
    rc = main(
        [
            "train",
            "roles",
            *common,
            "--train-roles",
            "solver",
            "--dataset",
            "arith:ops=+,n=8",
            "--heldout",
            "arith:ops=+,n=4,seed=3",
            "--group",
            "2",
            "--steps",
            "2",
            "--problems-per-step",
            "2",
            "--lora-r",
            "2",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and len(summary["curve"]) >= 2 and (out / "adapters.json").is_file()
    # adapters are served by the in-process vLLM backend only: a clear error elsewhere
    rc = main(
        ["eval", *common, "--dataset", "arith:n=2", "--adapters", str(out), "--out", str(tmp_path / "e")]
    )
    assert rc == 2 and "adapters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--topology", "chain:2", "--dataset", "arith:n=4"], "train_roles"),
        (["--topology", "chain:2", "--dataset", "arith:n=4", "--train-roles", "critic"], "train_roles"),
        (
            [
                "--topology",
                "chain:2",
                "--dataset",
                "arith:n=4",
                "--train-roles",
                "solver",
                "--loss-type",
                "ppo",
            ],
            "loss_type",
        ),
        (["--topology", "chain:2", "--train-roles", "solver"], "dataset"),
        (["--dataset", "arith:n=4", "--train-roles", "solver", "--report-to", "mlflow"], "report_to"),
        (["--dataset", "arith:n=4", "--train-roles", "solver", "--top-p", "1.5"], "top_p"),
        (
            ["--dataset", "arith:n=4", "--train-roles", "solver", "--importance-sampling", "x"],
            "importance_sampling",
        ),
    ],
)
def test_cli_train_roles_bad_input(
    argv: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentgraph.cli import main

    rc = main(
        [
            "train",
            "roles",
            "--backend",
            "scripted",
            "--scripted",
            "tests.test_train_roles:adder",
            *argv,
            "--out",
            str(tmp_path / "x"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {field}")
    assert not (tmp_path / "x").exists()


def test_missing_adapters_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentgraph.cli import main

    rc = main(
        ["eval", "--dataset", "arith:n=2", "--adapters", str(tmp_path / "nope"), "--out", str(tmp_path / "e")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: adapters")


def test_rollout_team_keeps_the_teams_thinking_budget(tokenizer: Any) -> None:
    t = scripted_trainer(tokenizer, None, steps=1)
    t.team = t.team.replace(sampling=SamplingOverrides(thinking_budget=(16, 32), answer_tokens=8))
    rollout = t.rollout_team(temperature=1.0, logprobs=True)
    for agent in rollout.agents:
        s = rollout.sampling_for(agent, rollout.role(agent))
        assert (s.thinking_budget, s.answer_tokens) == ((16, 32), 8)  # the team's, kept
        assert (s.temperature, s.max_tokens, s.logprobs) == (1.0, t.config.max_completion_length, True)


def _lora_b(t: RoleGRPOTrainer) -> float:
    return float(sum(p.detach().abs().sum() for n, p in t.policy.model.named_parameters() if "lora_B" in n))


async def test_role_grpo_trains_every_base_of_a_two_model_team(tokenizer: Any, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from agentgraph.backends import Router
    from agentgraph.testing.tiny import tiny_model
    from agentgraph.train import MixedRoleGRPOTrainer, role_trainer

    tiny = tiny_model(tmp_path / "models", name="tiny-second", tie_word_embeddings=True)
    team = make_team().replace(role_models={"checker": tiny})
    router = Router(
        {
            "smollm2": Scripted(default=adder, seed=1, tokenizer=tokenizer),
            tiny: Scripted(default=adder, seed=2, tokenizer=AutoTokenizer.from_pretrained(tiny), model=tiny),
        }
    )
    config = RoleGRPOConfig(
        train_roles=("adder", "checker"), group_size=4, problems_per_step=2, steps=2, learning_rate=1e-3,
        lora_r=4, lora_alpha=8, eval_every=1,
    )  # fmt: skip
    out = tmp_path / "run"
    t = role_trainer(team, additions(20, 0), router, config, heldout=additions(4, 9), out=out)
    assert isinstance(t, MixedRoleGRPOTrainer)
    (second,) = t.followers
    assert second.model_path == tiny and second.config.train_roles == ("checker",)
    assert t.config.train_roles == ("adder",) and t.model_path != tiny
    before = (_lora_b(t), _lora_b(second))
    log = await t.train()
    assert before == (0.0, 0.0) and _lora_b(t) > 0 and _lora_b(second) > 0  # both policies stepped
    assert [e.step for e in log] == [1, 2] and all(e.heldout_accuracy is not None for e in log)
    assert (out / "adapters.json").is_file() and (out / "bases" / "tiny-second" / "adapters.json").is_file()
    # resume continues both bases from their checkpoints
    more = config.model_copy(update={"steps": 3})
    again = role_trainer(team, additions(20, 0), router, more, heldout=additions(4, 9), out=out)
    assert isinstance(again, MixedRoleGRPOTrainer)
    log = await again.train(resume=True)
    assert [e.step for e in log] == [1, 2, 3] and again.followers[0].step == 3


def test_a_single_policy_trainer_refuses_roles_on_two_models(tokenizer: Any, tmp_path: Path) -> None:
    team = make_team().replace(role_models={"checker": "other-model"})
    from agentgraph.core.errors import ConfigError

    with pytest.raises(ConfigError, match="MixedRoleGRPOTrainer"):
        RoleGRPOTrainer(
            team,
            additions(4, 0),
            Scripted(tokenizer=tokenizer),
            RoleGRPOConfig(train_roles=("adder", "checker")),
        )


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA")
async def test_role_grpo_end_to_end_on_cuda(tmp_path: Path) -> None:
    """The whole trainer with its CUDA defaults (bf16 base, fp32 adapters, bf16 autocast, gradient
    checkpointing): scripted rollouts on a tiny model, steps that move the adapters, the published
    adapters, and a resume that continues from the checkpoint. (No held-out set: best-keeping could
    restore the untrained adapters and hide whether the steps moved them.)"""
    from transformers import AutoTokenizer

    from agentgraph.testing.tiny import tiny_model

    tiny = tiny_model(tmp_path / "models")
    backend = Scripted(default=adder, seed=1, tokenizer=AutoTokenizer.from_pretrained(tiny), model=tiny)
    config = RoleGRPOConfig(
        train_roles=("adder", "checker"), group_size=4, problems_per_step=2, steps=2, learning_rate=1e-3,
        lora_r=4, lora_alpha=8, eval_every=0,
    )  # fmt: skip
    out = tmp_path / "run"
    t = RoleGRPOTrainer(make_team(), additions(20, 0), backend, config, model=tiny, out=out)
    assert t.policy.device.type == "cuda" and t.policy.gradient_checkpointing
    assert next(t.policy.model.get_base_model().parameters()).dtype == torch.bfloat16
    log = await t.train()
    assert [e.step for e in log] == [1, 2] and _lora_b(t) > 0
    assert all(e.grad_norm > 0 and e.loss == e.loss for e in log)  # finite, not NaN
    assert (out / "adapters.json").is_file()
    more = config.model_copy(update={"steps": 3})
    again = RoleGRPOTrainer(make_team(), additions(20, 0), backend, more, model=tiny, out=out)
    log = await again.train(resume=True)
    assert [e.step for e in log] == [1, 2, 3] and again.step == 3
