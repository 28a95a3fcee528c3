"""Per-request LoRA on the in-process engine: a role's adapter changes what that role's agents say."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import agentgraph as ag
from agentgraph.backends import VLLM, Adapter, GenerationRequest
from agentgraph.core.errors import RequestRejected
from agentgraph.core.models import provision
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.graph.generators import chain
from tests.conftest import GPU_SHARE

pytestmark = pytest.mark.vllm


def make_adapter(path: Path, seed: int) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(provision(), dtype=torch.float32)
    # init_lora_weights=False: random A and B, so the adapter really changes the model
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(path)
    return str(path)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def lora_engine() -> AsyncIterator[VLLM]:
    async with VLLM(
        enable_lora=True,
        max_lora_rank=8,
        max_loras=2,
        kv_cache_gib=1,
        max_model_len=1024,
        gpu_memory_utilization=GPU_SHARE,
    ) as e:
        yield e


async def test_adapter_per_request_changes_logprobs(lora_engine: VLLM, tmp_path: Path) -> None:
    a1 = Adapter("critic-v1", make_adapter(tmp_path / "a1", 1))
    a2 = Adapter("critic-v2", make_adapter(tmp_path / "a2", 2))
    msgs = (ag.ChatMessage(role="user", content="What is 2 + 2?"),)
    s = ag.Sampling(temperature=0.0, max_tokens=6, logprobs=True)
    base, r1, r2, r1_again = await asyncio.gather(
        lora_engine.generate(GenerationRequest(messages=msgs, sampling=s)),
        lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=a1)),
        lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=a2)),
        lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=a1)),
    )
    assert base.logprobs and r1.logprobs and r2.logprobs and r1_again.logprobs
    assert base.logprobs[0] != pytest.approx(r1.logprobs[0], abs=1e-4)
    assert r1.logprobs[0] != pytest.approx(r2.logprobs[0], abs=1e-4)
    assert r1.token_ids == r1_again.token_ids  # the same adapter, the same greedy output


async def test_team_serves_a_role_adapter(lora_engine: VLLM, tmp_path: Path) -> None:
    adapter = Adapter("solver-v1", make_adapter(tmp_path / "s", 3))
    team = ag.Team(chain(2), rounds=1, adapters={"solver": adapter}, sampling=SamplingOverrides(max_tokens=8))
    r = await ag.solve(team, "What is 1 + 1?", lora_engine)
    assert r.errors == 0 and all(t.adapter == "solver-v1" for t in r.turns)
    with pytest.raises(RequestRejected, match="LoRA is off"):
        VLLM()._lora(adapter)


async def test_role_trainer_hot_reloads_adapters_without_restart(lora_engine: VLLM, tmp_path: Path) -> None:
    from agentgraph.train import RoleGRPOConfig, RoleGRPOTrainer
    from examples.train_roles_arith import additions, make_team

    config = RoleGRPOConfig(
        train_roles=("adder", "checker"),
        group_size=4,
        problems_per_step=2,
        steps=1,
        learning_rate=5e-3,  # one visible step
        # the 135M model rarely adds right in 6 tokens, so gold alone often gives every rollout 0 and
        # the step drops every group; a parsed answer earning its own reward keeps the groups varied
        format_reward=1.0,
        lora_r=8,
        lora_alpha=16,
        max_completion_length=6,
        eval_every=0,
    )
    trainer = RoleGRPOTrainer(make_team(), additions(16, 0), lora_engine, config, out=tmp_path)
    engine_before = lora_engine.engine
    await trainer.publish()
    v0 = trainer.served["adder"]
    msgs = (ag.ChatMessage(role="user", content="What is 12 + 7? Answer with just the number."),)
    s = ag.Sampling(temperature=0.0, max_tokens=4, logprobs=True)
    before = await lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=v0))
    entry = await trainer.train_step()
    v1 = trainer.served["adder"]
    assert v1.name != v0.name and entry.turns > 0 and entry.groups_kept > 0
    assert all(k in entry.seconds for k in ("rollout", "logprob", "backward", "reload"))
    after = await lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=v1))
    again_v0 = await lora_engine.generate(GenerationRequest(messages=msgs, sampling=s, adapter=v0))
    assert lora_engine.engine is engine_before  # no restart
    assert before.logprobs and after.logprobs and again_v0.logprobs
    assert abs(before.logprobs[0] - after.logprobs[0]) > 1e-4  # the new weights are served
    assert again_v0.logprobs[0] == pytest.approx(before.logprobs[0], abs=1e-5)  # the old version is intact


async def test_trl_grpo_trainer_with_team_sessions_as_rollouts(lora_engine: VLLM, tmp_path: Path) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from agentgraph.train.single_policy import TeamRollout, team_reward
    from examples.train_roles_arith import additions, make_team

    rows = [{"prompt": p.question, "answer": p.answer} for p in additions(8, 0)]
    rollout = TeamRollout(
        make_team(),
        lora_engine,
        loop=asyncio.get_running_loop(),
        max_tokens=6,
        adapter_dir=tmp_path / "policy",
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-3,
        beta=0.0,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        logging_steps=1,
    )
    model = AutoModelForCausalLM.from_pretrained(provision(), dtype=torch.float32)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[team_reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
        rollout_func=rollout,
    )
    await asyncio.to_thread(trainer.train)  # TRL is synchronous; the engine stays on this loop
    assert trainer.state.global_step == 2
    assert rollout.calls == 2 and rollout.version == 1  # the second rollout served the step-1 weights
    assert (tmp_path / "policy" / "step-1" / "adapter_model.safetensors").is_file()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert len(rewards) == 2 and all(0.0 <= r <= 1.0 for r in rewards)
