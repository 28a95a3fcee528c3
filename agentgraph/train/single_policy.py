"""Single-policy mode: TRL's own ``GRPOTrainer`` with team sessions as its rollouts.

For users who want one model for every role: TRL drives training (its sampler repeats each prompt G
times, its reward functions, its loss, its logging), and :class:`TeamRollout` is the ``rollout_func``
it calls for generation. Each prompt becomes one real team session on the in-process vLLM engine,
with every role served the policy's current LoRA weights (saved and hot-loaded under a new name
whenever TRL's step counter moves). The completion handed back to TRL is the turn that carries the
team's answer (:func:`answer_turn`) with its prompt ids, completion ids and vLLM sampling log-probs;
the team's answer is passed to the reward functions as ``team_answer``. A turn without the engine's
sampling log-probs is an error (:class:`~agentgraph.core.errors.BackendError`): no log-prob is ever
made up for TRL's importance ratio::

    rollout = TeamRollout(team, EngineThread(VLLM(enable_lora=True)))
    trainer = GRPOTrainer(model, reward_funcs=[team_reward], args=GRPOConfig(...),
                          train_dataset=ds, peft_config=LoraConfig(...), rollout_func=rollout)
    trainer.train()

TRL calls ``rollout_func`` synchronously while the engine is asynchronous: the engine lives on an
event loop in a background thread (:class:`EngineThread`) and each rollout waits for its sessions.
Inside async code that already owns an engine, run ``trainer.train`` in a thread
(``await asyncio.to_thread(trainer.train)``) and give ``TeamRollout`` the engine and that loop.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from agentgraph.backends.base import Adapter
from agentgraph.backends.vllm import VLLM
from agentgraph.core.answers import is_correct
from agentgraph.core.errors import BackendError
from agentgraph.core.messages import Turn
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import SessionResult
from agentgraph.team.team import Team

T = TypeVar("T")


class EngineThread:
    """An event loop in a daemon thread that owns a started :class:`VLLM` engine."""

    engine: VLLM
    loop: asyncio.AbstractEventLoop

    def __init__(self, engine: VLLM) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="agentgraph-engine")
        self.thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.engine.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        async def stop() -> None:
            self.engine.shutdown()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def answer_turn(result: SessionResult) -> Turn:
    """The agent turn that carries the team's answer.

    The decider's last turn when the rule names one (``chain_tail``, ``tree_root``); otherwise (a
    vote, a judge) the last answered agent turn of the final round that gave the team's answer, else
    the last answered agent turn. A session in which every agent turn failed has nothing to train
    on: :class:`BackendError` names it.
    """
    answered = [t for t in result.turns if t.kind == "agent" and t.ok]
    if not answered:
        raise BackendError(f"session {result.session}: every agent turn failed, nothing to train on")
    return result.answer_turn() or answered[-1]


class TeamRollout:
    """TRL ``rollout_func``: one team session per prompt; returns the turn carrying each team's answer."""

    def __init__(
        self,
        team: Team,
        engine: EngineThread | VLLM,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_tokens: int = 32,
        temperature: float = 1.0,
        adapter_dir: str | Path | None = None,
    ) -> None:
        self.team = team
        if isinstance(engine, EngineThread):
            self.engine, self.loop = engine.engine, engine.loop
        elif loop is None:
            raise ValueError("give the event loop that runs the engine, or an EngineThread")
        else:
            self.engine, self.loop = engine, loop
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.adapter_dir = Path(adapter_dir or tempfile.mkdtemp(prefix="agentgraph-policy-"))
        self.version = -1
        self.adapter: Adapter | None = None
        self.calls = 0

    def _publish(self, trainer: Any) -> None:
        step = int(trainer.state.global_step)
        if step == self.version and self.adapter is not None:
            return
        path = self.adapter_dir / f"step-{step}"
        trainer.model.save_pretrained(path)  # a PeftModel: writes only the adapter
        self.adapter = Adapter(name=f"policy@{step}", path=str(path))
        self.version = step

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        self._publish(trainer)
        assert self.adapter is not None
        roles = {self.team.topology.role_of(a) for a in self.team.topology.agents}
        policy = SamplingOverrides(
            temperature=self.temperature, top_p=1.0, max_tokens=self.max_tokens, logprobs=True
        )
        team = self.team.replace(
            adapters={r: self.adapter for r in roles},  # one policy for every role
            sampling=policy.over(self.team.sampling),
        )
        texts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        ids = [f"trl{self.calls}-{i}" for i in range(len(texts))]
        self.calls += 1
        future = asyncio.run_coroutine_threadsafe(
            scheduler.solve_many(team, texts, self.engine, session_ids=ids), self.loop
        )
        results = future.result()
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "team_answer": []}
        for r in results:
            turn = answer_turn(r)
            out["prompt_ids"].append(list(turn.prompt_token_ids))
            out["completion_ids"].append(list(turn.completion_token_ids))
            if turn.logprobs is None or len(turn.logprobs) != len(turn.completion_token_ids):
                # TRL would take made-up numbers as the sampling distribution: refuse instead
                raise BackendError(
                    f"session {r.session}: turn {turn.id} came back without one sampling log-prob per "
                    "token; TeamRollout needs them (vLLM returns them when asked)"
                )
            out["logprobs"].append(list(turn.logprobs))
            out["team_answer"].append(r.answer)
        return out


def team_reward(
    completions: list[Any], answer: list[str], team_answer: list[str | None], **_: Any
) -> list[float]:
    """TRL reward function: 1 when the team's answer equals the dataset's ``answer`` column."""
    return [float(is_correct(t, a)) for t, a in zip(team_answer, answer, strict=True)]
