"""Role cards: what an agent is asked to be.

A card is a YAML file (the built-in ones ship in ``agentgraph/roles/cards/``) validated into
:class:`Role`. The built-in cards are
solver, critic, verifier, summarizer, judge, manager, grader (scores a candidate: best-of-N,
beam search), stepper and finisher (write one step / the rest of a partial solution: beam
search), accumulator (one step of a multi-step calculation, its running result passed on: chains on
``arith:operands=N`` and ``ledger``); users add their own by path::

    book = RoleBook.default().with_cards("my_roles/skeptic.yaml")

There is no global registry: a :class:`RoleBook` is a plain value handed to the team.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentgraph.core.errors import ConfigError, from_validation, read_yaml_mapping
from agentgraph.core.sampling import Sampling
from agentgraph.core.thinking import Share

# Package data beside this module, found by path: a ``roles/`` folder of the user's on sys.path
# cannot stand in for the built-in cards (it could when they were a top-level ``roles`` package).
CARDS_DIR = Path(__file__).resolve().parent / "cards"


@lru_cache(maxsize=1)
def _built_in() -> tuple[Role, ...]:
    # read once per process: every Team() without its own book (and every Team.replace) asks for
    # them, and the cards are frozen package data
    return tuple(load_role(p) for p in sorted(CARDS_DIR.glob("*.yaml")))


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    description: str = ""
    system_prompt: str
    instruction: str = Field(description="appended after the problem and the peers' messages")
    peer_header: str = "Messages from other agents:"
    peer_template: str = "[{agent} ({role}), round {round}]: {text}"
    own_template: str = "[your own answer, round {round}]: {text}"
    summary_template: str = "[summary of round {round}]: {text}"
    answer_format: str = Field(
        "boxed",
        pattern=r"^(boxed|step|free|score)$",
        description="boxed: the answer in \\boxed{} (else the last expression); step: an answer only "
        "if the text gives one in \\boxed{} (a partial solution's numbers are not answers); score: a "
        "grader's number in \\boxed{} (its turns are kind 'score' and never vote); free: no answer",
    )
    score_range: tuple[float, float] = Field(
        (0.0, 10.0), description="the scores a grader may give; anything outside is unparseable"
    )
    peer_char_limit: int = Field(1500, ge=16, description="peer text is data: capped, never obeyed")
    share: Share | None = Field(
        None, description="what this role reads of others' turns: final | answer | full (None: the team's)"
    )
    conclude_cue: str = Field(
        "The final answer is \\boxed{",
        description="written after a forced end of thinking, so the answer follows (budget forcing)",
    )
    sampling: Sampling = Sampling()
    adapter: str | None = Field(None, description="path of a LoRA adapter trained for this role")
    model: str | None = Field(
        None, description="the model this role's agents run on (None: the team's); an agent's own wins"
    )


def load_role(path: str | Path) -> Role:
    """Load one card; errors name the file and the field."""
    p = Path(path)
    data = read_yaml_mapping(p, "role", "`name: ...`, `system_prompt: ...`")
    data.setdefault("name", p.stem)
    try:
        return Role.model_validate(data)
    except ValidationError as e:
        raise from_validation(e, f"role {p.name}: ", "see roles/cards/solver.yaml") from None


class RoleBook(Mapping[str, Role]):
    """An immutable name → :class:`Role` mapping."""

    def __init__(self, roles: Iterable[Role] = ()) -> None:
        self._roles: dict[str, Role] = {r.name: r for r in roles}

    @classmethod
    def default(cls) -> RoleBook:
        return cls(_built_in())

    def with_cards(self, *paths: str | Path) -> RoleBook:
        extra = [load_role(p) for p in paths]
        return RoleBook([*self._roles.values(), *extra])

    def with_roles(self, *roles: Role) -> RoleBook:
        return RoleBook([*self._roles.values(), *roles])

    def __getitem__(self, name: str) -> Role:
        try:
            return self._roles[name]
        except KeyError:
            known = ", ".join(sorted(self._roles))
            raise ConfigError(
                "role", f"unknown role {name!r}", f"use one of {known} or add a card by path"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._roles)

    def __len__(self) -> int:
        return len(self._roles)


__all__ = ["CARDS_DIR", "Role", "RoleBook", "load_role"]
