"""A team: a topology, the role cards its agents use, and the protocol (rounds, inter-round policy,
decision). Everything is checked when the team is built, before any request is sent.

A team is a value, like a networkx graph: running it is a function over it
(:func:`agentgraph.solve`, :func:`agentgraph.solve_many`), so the scheduler depends on the team and
never the other way round.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from agentgraph.backends.base import Adapter
from agentgraph.core.errors import ConfigError
from agentgraph.core.messages import TurnKind
from agentgraph.core.retry import RetryPolicy
from agentgraph.core.sampling import Sampling, SamplingOverrides
from agentgraph.core.thinking import SHARES, Share, parse_think
from agentgraph.graph.topology import Topology
from agentgraph.protocol.decisions import parse_decision
from agentgraph.protocol.inter_round import parse_policy
from agentgraph.roles.book import Role, RoleBook
from agentgraph.roles.presets import DEFAULT, Preset
from agentgraph.team.config import OnError, Overflow, TeamConfig
from agentgraph.team.strategy import Strategy


class Team:
    r"""A topology, its role cards and the protocol, checked once and ready to run.

    Parameters
    ----------
    topology : Topology
        The communication graph; its node attribute ``role`` names each agent's card.
    config : TeamConfig, optional
        The protocol and settings (:class:`~agentgraph.team.config.TeamConfig`, every field with
        its help); keyword ``settings`` are applied over it, so ``Team(g, rounds=2)`` works too.
        :meth:`replace` gives a changed team; a team is never changed in place.

    - ``rounds`` ≥ 1; in each round every agent speaks once, spatial generations in order, agents of
      one generation concurrently; round r reads only round r−1 across temporal edges. Default: the
      topology's own (``graph["rounds"]``: the shapes ``sc:N``/``bon:N`` are one round, ``beam``
      its depth — a different value is refused), else 2.
    - ``inter_round``: ``full`` | ``partial[:K[:agreement|confidence]]`` | ``summarize`` (or a policy object).
    - ``decision``: ``majority`` | ``weighted`` | ``judge`` | ``chain_tail`` | ``tree_root`` |
      ``best_score``. Default: the topology's own (``graph["decision"]``), else ``majority``.
    - ``strategy``: a :class:`Strategy` that runs the session instead of the rounds (beam search,
      cascades); a topology marked ``graph["strategy"]`` needs one — :func:`agentgraph.shape`
      builds both from a spec.
    - ``early_stop``: stop after a round in which every agent gave the same parseable answer.
    - ``on_error``: ``record`` (a failed request becomes a turn with ``error`` set; the team decides from
      the agents that answered) or ``raise`` (record it, then raise).
    - ``adapters``: role → :class:`Adapter`, overriding the cards (trainers hot-swap versions here).
    - ``sampling``: team-wide overrides applied over every role's defaults (agent overrides win).
    - ``retry``: :class:`RetryPolicy` — transient failures (server errors, timeouts) are retried with
      exponential backoff and jitter (default 3 attempts); every failed attempt is kept on the turn.
    - ``share``: what agents, summarizers and judges read of each other's turns — ``final`` (the
      text after the think block), ``answer`` or ``full``; a role card's ``share`` wins for its readers.
    - ``think``: ``auto`` (markers detected from the model's chat template), ``none``, or
      ``"OPEN,CLOSE"`` / a :class:`~agentgraph.core.thinking.ThinkFormat`.
    - ``overflow``: when a later-round prompt would not fit the context — ``truncate-peers`` (leave
      out the oldest, then longest, peer messages until it fits; recorded on the turn) or
      ``fail-session`` (that session ends as a recorded failure). Other sessions are not affected.
    - ``preset``: a :class:`~agentgraph.roles.presets.Preset` (the model authors' settings), applied over
      the role cards and under ``sampling``; ``presets`` (model → preset) gives the agents of other
      models their own.
    - ``model``, ``role_models``: what an agent runs on (:meth:`model_of`): its own ``model``
      attribute, else its role's in ``role_models``, else its card's ``model:``, else ``model``, else
      the backend's default. Every agent's model must be served (checked before any request).

    Edge logits are not read here: a team runs every edge of its topology. Sampling graphs from the
    logits is what :meth:`Topology.sample` and the graph trainer do.

    Examples
    --------
    >>> import asyncio
    >>> import agentgraph as ag
    >>> team = ag.Team(ag.full(3), rounds=2, inter_round="summarize")
    >>> team.describe()
    'full:3, 3 agents, 2 rounds, inter-round summarize, decision majority'
    >>> scripted = ag.backends.Scripted(default=lambda call: "\\boxed{7}")
    >>> result = asyncio.run(ag.solve(team, "3 + 4?", scripted, gold="7"))
    >>> result.answer, result.correct, result.rounds_run
    ('7', True, 2)
    """

    def __init__(self, topology: Topology, config: TeamConfig | None = None, **settings: Any) -> None:
        config = config or TeamConfig()
        if settings:
            config = config.replace(**settings)
        self.config = config
        rounds, decision, strategy = config.rounds, config.decision, config.strategy
        on_error, share, overflow, preset = config.on_error, config.share, config.overflow, config.preset
        if not isinstance(topology, Topology):
            raise ConfigError(
                "topology",
                f"{type(topology).__name__} is not a Topology",
                "use a builder from agentgraph.graph",
            )
        topology.validate()
        name = topology.graph.get("name", "topology")
        fixed = topology.graph.get("rounds")
        if rounds is None:
            rounds = fixed if fixed is not None else 2
        elif fixed is not None and rounds != fixed:
            raise ConfigError(
                "rounds", f"{name} runs {fixed} round(s), not {rounds}", "leave rounds out for this shape"
            )
        if decision is None:
            decision = str(topology.graph.get("decision", "majority"))
        if topology.graph.get("strategy") and strategy is None:
            raise ConfigError(
                "strategy",
                f"{name} is a search, not a graph to run in rounds",
                f"build it with agentgraph.shape({str(name)!r})",
            )
        if strategy is not None and not isinstance(strategy, Strategy):
            raise ConfigError("strategy", f"{type(strategy).__name__} has no run()", "use agentgraph.shape")
        self.strategy = strategy
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ConfigError("rounds", f"{rounds!r} is not an integer ≥ 1", "use rounds ≥ 1")
        if rounds > 1000:
            raise ConfigError("rounds", f"{rounds} rounds is more than 1000", "use fewer rounds")
        if on_error not in ("record", "raise"):
            raise ConfigError("on_error", f"{on_error!r} is not record or raise", "use record or raise")
        if share is not None and share not in SHARES:
            raise ConfigError(
                "share", f"{share!r} is not one of {', '.join(SHARES)}", "use final, answer or full"
            )
        if overflow not in ("truncate-peers", "fail-session"):
            raise ConfigError("overflow", f"{overflow!r} is not a rule", "use truncate-peers or fail-session")
        self.topology = topology
        self.rounds = rounds
        self.preset = preset if preset is not None else DEFAULT
        self.presets = dict(config.presets or {})
        base = config.roles if config.roles is not None else RoleBook.default()
        self.roles = self.preset.apply(base)
        self.role_models = dict(config.role_models or {})
        used = {topology.role_of(a) for a in topology.agents}
        for r in self.role_models:
            if r not in used:
                raise ConfigError(
                    "role_models",
                    f"the team has no agent of role {r!r} (roles: {', '.join(sorted(used))})",
                    "name a role of the topology",
                )
        # None is "not set": an explicit share (final included) wins over the preset's
        self.share: Share = share if share is not None else self.preset.share or "final"
        self.think = parse_think(config.think)
        self.overflow: Overflow = overflow
        self.policy = parse_policy(config.inter_round)
        self.decision = parse_decision(decision)
        self.early_stop = config.early_stop
        self.on_error: OnError = on_error
        self.adapters = dict(config.adapters or {})
        self.sampling = config.sampling
        self.retry = config.retry if config.retry is not None else RetryPolicy()
        # the scheduler asks for an agent's role every turn; the lookup raises a ConfigError naming
        # an unknown role, so building the map is also the check
        self._role_of = {a: self.roles[topology.role_of(a)] for a in topology.agents}
        self._model_of = {a: self._model(a, self._role_of[a]) for a in topology.agents}
        if self.presets:  # agents of a model with its own preset get its cards (instruction suffix)
            books = {id(p): p.apply(base) for p in self.presets.values()}
            for a, m in self._model_of.items():
                if m in self.presets:
                    self._role_of[a] = books[id(self.presets[m])][topology.role_of(a)]
        self.policy.check(self.roles)
        self.decision.check(topology, self.roles)
        self.agents = topology.agents
        self.generations = topology.generations()
        # the scheduler asks these once per turn; networkx edge views cost more than the rest of a turn
        self.spatial_predecessors = {a: topology.spatial_predecessors(a) for a in topology.agents}
        self.temporal_predecessors = {a: topology.temporal_predecessors(a) for a in topology.agents}
        # a team is a value: what each speaker samples with is resolved once per team, not per turn
        self._speakers: dict[tuple[str, str, TurnKind], tuple[Sampling, Adapter | None, str | None]] = {}

    def replace(self, topology: Topology | None = None, **changes: Any) -> Team:
        """A new team with ``changes`` to the config (checked again); this one is unchanged."""
        return Team(self.topology if topology is None else topology, self.config.replace(**changes))

    def role(self, agent: str) -> Role:
        return self._role_of[agent]

    def _model(self, agent: str | None, role: Role) -> str | None:
        if agent is not None and agent in self.topology and (m := self.topology.nodes[agent].get("model")):
            return str(m)
        return self.role_models.get(role.name) or role.model or self.config.model

    def model_of(self, agent: str | None, role: Role) -> str | None:
        """The model ``agent`` (or, for ``None``, a non-agent speaker of ``role``) runs on."""
        if agent is not None and agent in self._model_of:
            return self._model_of[agent]
        return self._model(agent, role)

    def models(self) -> list[str | None]:
        """Every model an agent of the team runs on, each once (``None``: the backend's default)."""
        return list(dict.fromkeys(self._model_of.values()))

    def preset_of(self, agent: str | None, role: Role) -> Preset:
        """The preset of the model ``agent`` runs on (the team's unless ``presets`` names one)."""
        if not self.presets:
            return self.preset
        return self.presets.get(self.model_of(agent, role) or "", self.preset)

    def share_of(self, role: Role) -> Share:
        return role.share or self.share

    def sampling_for(self, agent: str | None, role: Role) -> Sampling:
        s = role.sampling.merged(self.preset_of(agent, role).sampling).merged(self.sampling)
        if agent is not None:
            s = s.merged(self.topology.nodes[agent].get("sampling"))
        return s

    def speaker(self, agent: str, role: Role, kind: TurnKind) -> tuple[Sampling, Adapter | None, str | None]:
        """What ``agent`` speaking as ``role`` in a ``kind`` turn samples with, its adapter and its
        model — resolved once per team (a session asks every turn)."""
        key = (agent, role.name, kind)
        if (hit := self._speakers.get(key)) is None:
            who = agent if kind in ("agent", "score") else None
            sampling = self.sampling_for(who, role)
            if self.policy.logprobs and not sampling.logprobs:
                sampling = sampling.merged(SamplingOverrides(logprobs=True))
            if sampling.seed is not None:
                # one seed per speaker: agents with one prompt (round 0 of a debate) would otherwise
                # sample the same text, and a seeded session still repeats exactly
                own = zlib.crc32(f"{sampling.seed}|{agent}|{kind}".encode()) & 0x7FFFFFFF
                sampling = sampling.model_copy(update={"seed": own})
            hit = self._speakers[key] = (sampling, self.adapter_for(who, role), self.model_of(who, role))
        return hit

    def adapter_for(self, agent: str | None, role: Role) -> Adapter | None:
        if agent is not None and (path := self.topology.nodes[agent].get("adapter")):
            return Adapter(name=f"{agent}:{Path(path).name}", path=str(path))
        if role.name in self.adapters:
            return self.adapters[role.name]
        if role.adapter:
            return Adapter(name=f"{role.name}:{Path(role.adapter).name}", path=role.adapter)
        return None

    def describe(self) -> str:
        name = self.topology.graph.get("name", "topology")
        if self.strategy is not None:
            return f"{name}, {len(self.topology)} agents, {self.strategy.name}"
        return (
            f"{name}, {len(self.topology)} agents, {self.rounds} rounds, "
            f"inter-round {self.policy.name}, decision {self.decision.name}"
        )
