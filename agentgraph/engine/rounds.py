"""The default strategy: every round, then the decision.

Round r runs the spatial generations of the topology in order and the agents of one generation
concurrently (``asyncio.gather``); it reads round r−1 only, through temporal edges filtered by the
inter-round policy. Beam search and cascades (:mod:`agentgraph.shapes.strategies`) are the other
strategies; all three spend requests only through ``session.speak``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentgraph.core.answers import answer_key
from agentgraph.core.messages import Decision, Turn
from agentgraph.engine import eager
from agentgraph.roles.prompts import view
from agentgraph.team.strategy import SessionLike


@dataclass(frozen=True)
class Rounds:
    """``team.rounds`` rounds (fewer under ``early_stop``), then ``team.decision``."""

    @property
    def name(self) -> str:
        return "rounds"

    async def run(self, session: SessionLike) -> tuple[Decision, int, bool]:
        team, topo = session.team, session.team.topology
        prev: dict[str, Turn] = {}
        rounds_run, stopped_early = 0, False
        for rnd in range(team.rounds):
            carried = (
                await team.policy.carry(
                    rnd,
                    {a: t for a, t in prev.items() if t.ok},
                    team.agents,
                    team.temporal_predecessors,
                    team.roles,
                    session.speak,
                )
                if rnd > 0
                else {}
            )
            current: dict[str, Turn] = {}
            spatial = team.spatial_predecessors
            for generation in team.generations:
                # spatial predecessors sit in earlier generations, so every view exists already
                speeches = []
                for agent in generation:
                    peers = carried.get(agent, ())
                    if preds := spatial[agent]:
                        peers = [*peers, *(view(current[u], "spatial") for u in preds if current[u].ok)]
                    speeches.append(session.speak(agent, team.role(agent), rnd, "agent", peers))
                # concurrently; a turn that needs no wait (a scripted backend) costs no task
                done = await eager.gather(*speeches, eager=session.eager)
                for t in done:
                    current[t.agent] = t
            prev = current
            rounds_run = rnd + 1
            if team.early_stop and rnd + 1 < team.rounds:
                keys = {answer_key(t.answer) for t in current.values()}
                if len(keys) == 1 and None not in keys:
                    stopped_early = True
                    break
        last = [prev[a] for a in team.agents]
        decision = await team.decision.decide(topo, last, session.session, team.roles, session.speak)
        return decision, rounds_run, stopped_early


ROUNDS = Rounds()
