"""Joint training: graph GRPO on the edges and role GRPO on the adapters, from the same rollouts.

Each step the graph trainer samples ``group_size`` graphs per problem from its edge probabilities;
the sessions run with every trainable role served its current adapter and sampling log-probs on.
The *same* sessions then give both updates: the graph's (reward per session, advantage within the
problem's group, ``−A · log p(graph)``) and the roles' (reward per turn, advantage within
(problem, role, round) groups, TRL's GRPO loss) — one rollout, two learners, so joint training
costs one rollout per step rather than two. ``schedule="alternate"`` instead gives even steps to the
graph and odd steps to the roles, each with its own rollout (the roles then see a fixed graph
distribution while they learn).

Each learner keeps its own checkpoint and log (``OUT/graph``, ``OUT/roles``); ``resume=True``
continues both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ConfigDict

from agentgraph.backends.base import Backend
from agentgraph.eval.datasets import Problem
from agentgraph.graph.topology import Topology
from agentgraph.team.team import Team
from agentgraph.train.checkpoint import RoleStepLog
from agentgraph.train.config import JointConfig
from agentgraph.train.graph import GraphGRPOTrainer, StepLog
from agentgraph.train.loop import StepRecord, train_loop
from agentgraph.train.mixed_roles import role_trainer


class JointStep(StepRecord):
    model_config = ConfigDict(extra="forbid")

    graph: StepLog | None
    roles: RoleStepLog | None
    seconds: float


class JointTrainer:
    """``make_team(topology)`` turns a sampled graph into a team (rounds, decision, role book)."""

    def __init__(
        self,
        base: Topology,
        problems: Sequence[Problem],
        backend: Backend,
        config: JointConfig | None = None,
        *,
        make_team: Callable[[Topology], Team] | None = None,
        heldout: Sequence[Problem] = (),
        model: str | None = None,
        out: str | Path | None = None,
    ) -> None:
        self.config = c = config or JointConfig()
        self.out = Path(out) if out is not None else None
        build = make_team or (lambda t: Team(t, rounds=1, decision="majority"))
        self.roles = role_trainer(
            build(base),
            problems,
            backend,
            c.roles.model_copy(update={"steps": c.steps}),
            heldout=heldout,
            model=model,
            out=self.out / "roles" if self.out else None,
        )

        def rollout_team(t: Topology) -> Team:
            # sessions of sampled graphs serve the current adapters and keep sampling log-probs
            return self.roles.rollout_team(temperature=c.roles.temperature, logprobs=True, team=build(t))

        self.graph = GraphGRPOTrainer(
            base,
            problems,
            backend,
            c.graph.model_copy(update={"steps": c.steps}),
            make_team=rollout_team,
            out=self.out / "graph" if self.out else None,
        )
        self.step = 0
        self.log: list[JointStep] = []

    async def train_step(self) -> JointStep:
        start = time.perf_counter()
        if not self.roles.served:
            await self.roles.publish()
        g_log: StepLog | None = None
        r_log: RoleStepLog | None = None
        if self.config.schedule == "shared":
            batch, draws = self.graph.draw_batch()
            t0 = time.perf_counter()
            results, without = await asyncio.gather(
                self.graph.run_batch(batch, draws), self.graph.run_counterfactuals(batch, draws)
            )
            rollout_s = time.perf_counter() - t0
            g_log = self.graph.update(draws, results, without)
            problem_of = [i for i, group in enumerate(draws) for _ in group]
            r_log = await self.roles.train_on(results, problem_of, rollout_s=rollout_s)
        elif self.step % 2 == 0:
            g_log = await self.graph.train_step()
            self.roles.step += 1  # the role learner's clock follows the joint step
        else:
            r_log = await self.roles.train_step()
            self.graph.step += 1
        self.step += 1
        return JointStep(step=self.step, graph=g_log, roles=r_log, seconds=time.perf_counter() - start)

    async def after_step(self, entry: StepRecord, last: bool) -> None:
        assert isinstance(entry, JointStep)
        if entry.roles is not None:
            await self.roles.after_step(entry.roles, last)

    def record(self, entry: StepRecord) -> None:
        """Each learner keeps its own part of the step (``OUT/graph/log.jsonl``, ``OUT/roles/log.jsonl``)."""
        assert isinstance(entry, JointStep)
        self.log.append(entry)
        if entry.graph is not None:
            self.graph.record(entry.graph)
        if entry.roles is not None:
            self.roles.record(entry.roles)

    def agree(self, flag: bool) -> bool:
        return flag  # joint training runs in one process

    def save_checkpoint(self) -> Path | None:
        self.graph.save_checkpoint()
        self.roles.save_checkpoint()
        return self.out

    async def train(self, *, resume: bool = False, progress: bool = False) -> Topology:
        if resume:
            self.graph.load_checkpoint()
            self.roles.load_checkpoint()
            self.step = min(self.graph.step, self.roles.step)
            self.graph.step = self.roles.step = self.step
        await self.roles.start()  # the starting point of the held-out curve
        await train_loop(
            self, steps=self.config.steps, checkpoint_every=1, desc="joint GRPO", progress=progress
        )
        if self.graph.config.select_problems:
            self.graph.selected = await self.graph.select()  # with the trained adapters serving
        pruned = self.graph.finish()
        if self.roles.heldout and self.roles.evals[-1][0] != self.roles.step:
            await self.roles.evaluate_heldout()
        self.roles.finish()
        return pruned
