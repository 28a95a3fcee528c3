"""TRL's own ``GRPOTrainer`` on the arithmetic adder: the single-agent baseline a user would train.

One set-up serves ``examples/compare_training.py`` (the ``single+trl`` arm) and
``bench/role_step.py`` (TRL's step time beside ours), so both measure the same trainer: the adder's
card as the prompt, reward 1 when the extracted answer is correct, LoRA on the given modules, DAPO
loss without KL (as role GRPO's defaults), transformers generation on the CPU (TRL's vLLM modes need
CUDA). TRL's console printer is removed so stdout stays for the caller's table and JSON line.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

from agentgraph.core.answers import extract, is_correct
from agentgraph.eval.datasets import Problem
from agentgraph.roles.book import Role
from agentgraph.roles.prompts import build_messages
from examples.train_roles_arith import ADDER


def reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """1.0 for each completion whose extracted answer is correct, else 0.0 (TRL's reward signature)."""
    return [float(is_correct(extract(c[-1]["content"]), a)) for c, a in zip(completions, answer, strict=True)]


def trl_adder_trainer(
    problems: Sequence[Problem],
    *,
    group: int,
    problems_per_step: int,
    max_tokens: int,
    lr: float,
    rank: int,
    targets: Sequence[str],
    seed: int,
    max_steps: int,
    callbacks: Sequence[Any] = (),
    role: Role = ADDER,
) -> Any:
    """A ready ``trl.GRPOTrainer`` on the embedded model (fp32, CPU) for ``role``'s prompts (the
    adder's unless told)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from agentgraph.core.models import provision

    rows = [
        {"prompt": [m.model_dump() for m in build_messages(role, p.question, [])], "answer": p.answer}
        for p in problems
    ]
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-adder-"),
        per_device_train_batch_size=group * problems_per_step,
        num_generations=group,
        max_completion_length=max_tokens,
        learning_rate=lr,
        beta=0.0,
        temperature=1.0,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=seed,
        loss_type="dapo",
        disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(provision(), dtype=torch.float32)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(rows),
        peft_config=LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets)),
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)
    return trainer
