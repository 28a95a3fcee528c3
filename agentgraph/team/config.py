"""A team's settings as one frozen value: :class:`TeamConfig`.

Every field has its help (``TeamConfig.help(name)``) and a default that means "not set" where a
lower layer (the topology, a preset, a role card) may supply the value, so an explicit setting always
wins: ``share="final"`` given by the user beats a preset's ``share``. :meth:`TeamConfig.replace`
returns a changed copy; nothing in the library mutates a team or its config in place.

Examples
--------
>>> c = TeamConfig(rounds=2)
>>> c.replace(rounds=3).rounds, c.rounds
(3, 2)
>>> c.replace(colour="red")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agentgraph.core.errors.ConfigError: colour: is not a team setting (use one of rounds, inter_round, ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from agentgraph.backends.base import Adapter
from agentgraph.core.errors import ConfigError
from agentgraph.core.retry import RetryPolicy
from agentgraph.core.sampling import SamplingOverrides
from agentgraph.core.thinking import Share, ThinkFormat
from agentgraph.protocol.decisions import DecisionRule
from agentgraph.protocol.inter_round import InterRound
from agentgraph.roles.book import RoleBook
from agentgraph.roles.presets import Preset
from agentgraph.team.strategy import Strategy

OnError = Literal["record", "raise"]
Overflow = Literal["truncate-peers", "fail-session"]


@dataclass(frozen=True)
class TeamConfig:
    """The protocol and settings of a team; the topology is given beside it."""

    rounds: int | None = field(
        default=None,
        metadata={
            "help": "rounds ≥ 1; in each round every agent speaks once. Default: the topology's own "
            "(graph['rounds']: sc:N and bon:N are one round, beam its depth), else 2"
        },
    )
    inter_round: str | InterRound = field(
        default="full",
        metadata={
            "help": "what crosses rounds: full | partial[:K[:agreement|confidence|verifier]] | summarize"
        },
    )
    decision: str | DecisionRule | None = field(
        default=None,
        metadata={
            "help": "majority | weighted | judge | chain_tail | tree_root | best_score. Default: "
            "the topology's own (graph['decision']), else majority"
        },
    )
    roles: RoleBook | None = field(
        default=None, metadata={"help": "the role cards (default: the built-in ones)"}
    )
    early_stop: bool = field(
        default=False,
        metadata={"help": "stop after a round in which every agent gave the same parseable answer"},
    )
    on_error: OnError = field(
        default="record",
        metadata={
            "help": "record: a failed request becomes a recorded turn (a rejected one fails its "
            "session only); raise: record it, then raise"
        },
    )
    adapters: Mapping[str, Adapter] | None = field(
        default=None, metadata={"help": "role → LoRA adapter, over the cards' own"}
    )
    sampling: SamplingOverrides | None = field(
        default=None,
        metadata={
            "help": "team-wide sampling over every role's defaults and the preset (an agent's own wins)"
        },
    )
    retry: RetryPolicy | None = field(
        default=None, metadata={"help": "retries of transient failures (default: 3 attempts with backoff)"}
    )
    share: Share | None = field(
        default=None,
        metadata={
            "help": "what agents read of each other: final | answer | full. Default: the preset's, "
            "else final; a role card's share wins for its readers"
        },
    )
    think: str | ThinkFormat | None = field(
        default="auto",
        metadata={"help": "think markers: auto (from the chat template) | none | 'OPEN,CLOSE'"},
    )
    overflow: Overflow = field(
        default="truncate-peers",
        metadata={"help": "a later-round prompt over the context: truncate-peers | fail-session"},
    )
    preset: Preset | None = field(
        default=None, metadata={"help": "the model authors' settings, over the cards and under sampling"}
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "the model agents run on when neither the agent, its role in role_models nor its "
            "card names one (None: the backend's default)"
        },
    )
    role_models: Mapping[str, str] | None = field(
        default=None,
        metadata={"help": "role → model its agents run on, over the cards' model: (an agent's own wins)"},
    )
    presets: Mapping[str, Preset] | None = field(
        default=None,
        metadata={
            "help": "model → the preset of the agents on that model (default: preset for all); an R1 "
            "distill and a Qwen3 in one team each get their authors' settings"
        },
    )
    strategy: Strategy | None = field(
        default=None,
        metadata={"help": "how a session spends its requests instead of rounds (beam search, cascades)"},
    )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def help(cls, name: str) -> str:
        return str(next(f.metadata["help"] for f in fields(cls) if f.name == name))

    def replace(self, **changes: Any) -> TeamConfig:
        names = self.names()
        for k in changes:
            if k not in names:
                raise ConfigError(k, "is not a team setting", f"use one of {', '.join(names[:2])}, ...")
        return dataclasses.replace(self, **changes)


__all__ = ["OnError", "Overflow", "TeamConfig"]
