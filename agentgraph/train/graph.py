"""Graph GRPO: learn edge (and optionally agent) keep-logits, then prune to an efficient topology.

For each problem the trainer samples ``group_size`` graphs from the current edge probabilities (every
edge independently, so there is no order bias), runs them as real sessions through any backend,
and rewards each ``correct − token_cost · tokens / 1000``. The advantage of a graph is its reward
normalised within its group, ``(r − mean) / (std + eps)`` (``baseline="none"`` reproduces
GPTSwarm's plain REINFORCE), and the loss is ``−Σ advantage · log p(graph)`` with Adam on the
logits. All sessions of a step are in flight together.

At the end — or every ``prune_every`` steps with ``prune_ratio`` (AgentPrune-style iterative
magnitude pruning: drop the ``max(1, round(ρ·n_active))`` lowest logits; masks never regrow) — the
learned graph is pruned to a deterministic evaluation graph (threshold or top-k). With
``select_problems`` the final graph is instead chosen by running graphs on training problems
(:mod:`agentgraph.train.selection`: the nested graphs of the k most probable edges, then edges added
and removed one at a time), which is what makes the result robust when agents can be persuaded.

Checkpoints (logits, Adam state, step, RNG state, log) are written atomically every
``checkpoint_every`` steps; ``resume=True`` continues from the last one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ConfigDict, Field

from agentgraph.backends.base import Backend
from agentgraph.core.atomic import write_atomic
from agentgraph.core.errors import ConfigError
from agentgraph.engine import scheduler
from agentgraph.engine.transcript import SessionResult
from agentgraph.eval.datasets import Problem
from agentgraph.graph.topology import Topology
from agentgraph.team.team import Team
from agentgraph.train import rewards as reward_specs
from agentgraph.train.base import BaseTrainer
from agentgraph.train.config import GraphGRPOConfig
from agentgraph.train.counterfactual import without_each
from agentgraph.train.credit import advantages, credited, difference_advantages
from agentgraph.train.loop import StepRecord, train_loop, trim_log
from agentgraph.train.policies.edge import EdgePolicy, edge_name
from agentgraph.train.selection import held_out_pick, holdout_size, stepwise
from agentgraph.train.trackers import Tracker


class StepLog(StepRecord):
    model_config = ConfigDict(extra="forbid")

    reward: float
    accuracy: float | None = Field(description="sessions right against gold (None: no gold)")
    tokens: float
    loss: float
    probabilities: dict[str, float]
    label_accuracy: float | None = Field(
        None, description="consensus labels equal to gold, over labelled problems with gold"
    )
    labelled: float | None = Field(None, description="share of the step's problems that got a label")
    agreement: float | None = Field(None, description="mean share of votes behind a consensus label")


class GraphGRPOTrainer(EdgePolicy, BaseTrainer[StepLog]):
    """Learns keep-probabilities for the edges of ``base`` by running real sessions.

    ``make_team(topology)`` turns a realized graph into a :class:`Team` (rounds, decision, …); by
    default ``Team(topology, rounds=1, decision="majority")``.
    """

    log_model = StepLog

    def __init__(
        self,
        base: Topology,
        problems: Sequence[Problem],
        backend: Backend,
        config: GraphGRPOConfig | None = None,
        *,
        make_team: Callable[[Topology], Team] | None = None,
        out: str | Path | None = None,
    ) -> None:
        base.validate()
        if not problems:
            raise ConfigError("dataset", "no training problems", "give at least one problem")
        self.base = base
        self.problems = list(problems)
        self.backend = backend
        self.config = config or GraphGRPOConfig()
        self.make_team = make_team or (lambda t: Team(t, rounds=1, decision="majority"))
        self.out = Path(out) if out is not None else None
        c = self.config
        reward_specs.need_gold(self.problems, c.reward, "dataset")
        self.reward_fn = reward_specs.load(c.reward)
        # the final graph is chosen by reward on training problems: under consensus, those with gold
        self.select_pool = [p for p in self.problems if c.reward != "consensus" or p.answer is not None]
        if c.select_problems and not self.select_pool:
            raise ConfigError(
                "select_problems",
                "choosing the final graph needs training problems with gold, and none has one",
                "set select_problems 0 (threshold / top-k alone) or give some problems answers",
            )
        self.holdout_n = holdout_size(c, len(self.select_pool))
        self.tracker = Tracker(c.report_to, self.out, "graph")
        self.init_edges(base, c)
        # leave-one-out: the agent each edge is credited to, and the agents left out in turn
        self.edge_credit = credited(self.edges, self.roots)
        self.left_out = sorted(set(self.edge_credit)) if c.credit == "leave-one-out" else []
        self.step = 0
        self.problem_rng = random.Random(c.seed)
        self.log: list[StepLog] = []
        self.selection: list[tuple[int, float]] = []  # (edges, mean reward) of each graph select() tried
        self.selected: Topology | None = None

    async def select(self) -> Topology:
        """The final graph, chosen by running graphs (:func:`agentgraph.train.selection.stepwise`) on
        ``select_problems`` training problems, each under the same session id in every graph."""
        c = self.config
        rng = random.Random(c.seed + 1)
        problems = rng.sample(self.select_pool, min(c.select_problems, len(self.select_pool)))
        # drawn apart, and after the search's own draw, so select_holdout leaves the search unchanged
        chosen = {id(p) for p in problems}
        rest = [p for p in self.select_pool if id(p) not in chosen]
        holdout = random.Random(c.seed + 2).sample(rest, min(self.holdout_n, len(rest)))

        def scorer(on: list[Problem], tag: str, log: bool) -> Callable[[Topology], Awaitable[np.ndarray]]:
            async def score(g: Topology) -> np.ndarray:
                team = self.make_team(g)
                rs = await asyncio.gather(
                    *(
                        scheduler.solve(
                            team, p.question, self.backend, gold=p.answer, session_id=f"{tag}-{p.id}"
                        )
                        for p in on
                    )
                )
                r = np.array([self.reward(x) for x in rs], dtype=float)
                if log:
                    self.selection.append((sum(len(g.edges_of(k)) for k in c.learn), float(r.mean())))
                return r

            return score

        prob = self.probabilities()
        finalists: list[Topology] = []
        nested = self.candidates()
        best = await stepwise(
            nested + self.stars(nested),
            [e for e, on in zip(self.edges, self.active.tolist(), strict=True) if on],
            self.base,
            lambda e: prob.get(edge_name(e), 0.0),
            scorer(problems, "sel", log=True),
            kinds=c.learn,
            se=c.select_se,
            rounds=c.select_rounds,
            finalists=finalists,
        )
        if holdout and len(finalists) > 1:
            best, _ = await held_out_pick(finalists, scorer(holdout, "hold", log=False))
        best.graph["name"] = f"learned({self.base.graph.get('name', 'topology')})"
        return best

    # -- training -------------------------------------------------------------------------------------
    def reward(self, r: SessionResult) -> float:
        """A session's reward against its gold (or the user's function): graph selection's."""
        return reward_specs.session_value(r, self.reward_fn, self.config.token_cost)

    Draw = tuple[Topology, torch.Tensor, torch.Tensor]

    def draw_batch(self) -> tuple[list[Problem], list[list[Draw]]]:
        """This step's problems and ``group_size`` sampled graphs for each."""
        c = self.config
        batch = [
            self.problems[self.problem_rng.randrange(len(self.problems))] for _ in range(c.problems_per_step)
        ]
        return batch, [[self.sample() for _ in range(c.group_size)] for _ in batch]

    async def run_batch(
        self, batch: Sequence[Problem], draws: Sequence[Sequence[Draw]]
    ) -> list[SessionResult]:
        """Every sampled graph on its problem, all sessions in flight; problem-major order."""

        async def run(p: Problem, g: Topology, j: int, i: int) -> SessionResult:
            return await scheduler.solve(
                self.make_team(g),
                p.question,
                self.backend,
                gold=p.answer,
                session_id=self.session_id(i, j),
            )

        return list(
            await asyncio.gather(
                *(
                    run(p, g, j, i)
                    for i, (p, group) in enumerate(zip(batch, draws, strict=True))
                    for j, (g, _, _) in enumerate(group)
                )
            )
        )

    async def run_counterfactuals(
        self, batch: Sequence[Problem], draws: Sequence[Sequence[Draw]]
    ) -> list[list[dict[str, SessionResult]]]:
        """With ``credit="leave-one-out"``: every sampled graph again without each credited agent
        (:mod:`agentgraph.train.counterfactual`); empty otherwise."""
        if not self.left_out:
            return []
        graphs = [[g for g, _, _ in group] for group in draws]
        return await without_each(graphs, batch, self.left_out, self.make_team, self.backend, self.session_id)

    def session_id(self, i: int, j: int) -> str:
        """The session id of graph ``j`` of problem ``i`` in this step."""
        return f"step{self.step}-p{i}-g{j}"

    def update(
        self,
        draws: Sequence[Sequence[Draw]],
        results: Sequence[SessionResult],
        without: Sequence[Sequence[dict[str, SessionResult]]] | None = None,
    ) -> StepLog:
        """One policy-gradient step on the logits from the sessions of ``draws`` (and, with
        ``credit="leave-one-out"``, their counterfactuals from :meth:`run_counterfactuals`)."""
        c = self.config
        if self.left_out and not without:
            raise ValueError("credit='leave-one-out' needs the counterfactual sessions (run_counterfactuals)")
        self.optimizer.zero_grad()
        loss = torch.zeros(())
        rewards_all: list[float] = []
        labels = []
        for i, group in enumerate(draws):
            rs = results[i * c.group_size : (i + 1) * c.group_size]
            rewards, lab = reward_specs.group_session_rewards(
                rs, c.reward, self.reward_fn, c.token_cost, c.consensus_min_share
            )
            labels.append(lab)
            rewards_all += rewards
            adv = advantages(rewards, eps=c.eps) if c.baseline == "group" else rewards
            if without:
                label = lab.label.get(0)
                values = [
                    {
                        v: reward_specs.labelled_value(r, label, c.reward, self.reward_fn, c.token_cost)
                        for v, r in w.items()
                    }
                    for w in without[i]
                ]
                by_agent = difference_advantages(rewards, values, eps=c.eps, scale=c.baseline == "group")
                for j, (a, (_, em, am)) in enumerate(zip(adv, group, strict=True)):
                    per_edge = torch.tensor(
                        [float(by_agent[v][j]) if v in by_agent else 0.0 for v in self.edge_credit]
                    )
                    lp = (per_edge * self.edge_log_probs(em)).sum() + float(a) * self.agent_log_prob(am)
                    loss = loss - lp
                continue
            for a, (_, em, am) in zip(adv, group, strict=True):
                loss = loss - float(a) * self.log_prob(em, am)
        loss = loss / (len(draws) * c.group_size)
        if c.entropy_coef:
            loss = loss - c.entropy_coef * self.entropy()
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.step += 1
        self._iterative_prune()
        graded = [bool(r.correct) for r in results if r.gold is not None]
        entry = StepLog(
            step=self.step,
            reward=float(np.mean(rewards_all)),
            accuracy=float(np.mean(graded)) if graded else None,
            tokens=float(np.mean([r.usage.total_tokens for r in results])),
            loss=float(loss.detach()),
            probabilities=self.probabilities(),
        )
        if c.reward == "consensus":
            lab = reward_specs.merged(labels)
            entry.label_accuracy, entry.labelled, entry.agreement = lab.accuracy, lab.labelled, lab.agreement
        return entry

    async def train_step(self) -> StepLog:
        batch, draws = self.draw_batch()
        results, without = await asyncio.gather(
            self.run_batch(batch, draws), self.run_counterfactuals(batch, draws)
        )
        return self.update(draws, results, without)

    async def train(self, *, resume: bool = False, progress: bool = False) -> Topology:
        """Train to ``config.steps`` (from the last checkpoint with ``resume``); the pruned graph."""
        if resume:
            self.load_checkpoint()

        def postfix(e: StepRecord) -> dict[str, object]:
            assert isinstance(e, StepLog)
            return {"reward": f"{e.reward:.2f}", "tokens": f"{e.tokens:.0f}"}

        await train_loop(
            self,
            steps=self.config.steps,
            checkpoint_every=self.config.checkpoint_every,
            desc="graph GRPO",
            progress=progress,
            postfix=postfix,
        )
        if self.config.select_problems:
            self.selected = await self.select()
        return self.finish()

    def finish(self) -> Topology:
        """The pruned (or selected) graph; with an ``out`` folder also ``pruned.json`` and the plots."""
        pruned = self.selected if self.selected is not None else self.pruned()
        self.tracker.close()
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            pruned.save(self.out / "pruned.json")
            self.plot()
        return pruned

    # -- persistence ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "edges": [list(e) for e in self.edges],
            "logits": self.logits.detach().clone(),
            "agent_logits": self.agent_logits.detach().clone(),
            "active": self.active.clone(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "problem_rng": self.problem_rng.getstate(),
            "config": self.config.model_dump(),
        }

    def save_checkpoint(self) -> Path | None:
        if self.out is None:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        state = self.state()
        return write_atomic(self.out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self) -> bool:
        if self.out is None or not (self.out / "checkpoint.pt").exists():
            return False
        st = torch.load(self.out / "checkpoint.pt", weights_only=False)
        if [tuple(e) for e in st["edges"]] != self.edges:
            raise ConfigError(
                "resume", "the checkpoint was trained on another base topology", "use the same --base"
            )
        with torch.no_grad():
            self.logits.copy_(st["logits"])
            self.agent_logits.copy_(st["agent_logits"])
        self.active = st["active"]
        self.optimizer.load_state_dict(st["optimizer"])
        self.rng.bit_generator.state = st["rng"]
        self.problem_rng.setstate(st["problem_rng"])
        self.step = int(st["step"])
        self.log = trim_log(self.out / "log.jsonl", StepLog, self.step)
        return True

    def plot(self) -> None:
        assert self.out is not None
        from agentgraph.core.plotting import pyplot

        plt = pyplot()

        if self.log:
            steps = [x.step for x in self.log]
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
            w = max(1, len(steps) // 20)
            smooth = np.convolve([x.reward for x in self.log], np.ones(w) / w, mode="same")
            a1.plot(steps, smooth, label=f"reward (moving avg {w})")
            a1.set_xlabel("step")
            a1.legend(fontsize=8)
            for name in self.log[-1].probabilities:
                a2.plot(steps, [x.probabilities[name] for x in self.log], lw=1, label=name)
            a2.set_xlabel("step")
            a2.set_ylabel("edge probability")
            a2.set_ylim(0, 1)
            if len(self.log[-1].probabilities) <= 12:
                a2.legend(fontsize=6)
            fig.savefig(self.out / "learning_curve.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
        g = self.base.copy()
        with torch.no_grad():
            for e, lg in zip(self.edges, self.logits.tolist(), strict=True):
                g.edges[e]["logit"] = float(lg)
        g.draw(self.out / "topology.png", title="learned edge probabilities (width)")
