"""How a turn's chat messages are laid out.

What agents share comes first so vLLM's prefix cache can reuse it: the role's system prompt, then
the problem, then the peers' messages, then the role's instruction. Peer text is data: it is
length-capped (``Role.peer_char_limit``, keeping the end, where answers are) and only ever shown to
the model — the framework never interprets it.

What a reader sees of a peer's turn is the reader's ``share`` (:mod:`agentgraph.core.thinking`):
``final`` (the text after the think block — for a model that does not think, the whole text),
``answer`` (the extracted answer only) or ``full`` (thinking included). Models whose authors ask
for no system prompt (R1 distills; see :mod:`agentgraph.roles.presets`) get the role's system prompt at
the head of the user turn instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from string import Formatter
from typing import NamedTuple

from agentgraph.core.messages import ChatMessage, Turn, TurnKind
from agentgraph.core.thinking import Share
from agentgraph.roles.book import Role


class PeerView(NamedTuple):
    """One message shown to a reader, and how it reached it (a NamedTuple: the scheduler makes
    several per turn, and a frozen dataclass costs 5× as much to build)."""

    turn_id: str
    agent: str
    role: str
    round: int
    text: str
    how: str  # "spatial", "temporal", "own" or "summary"
    final: str
    answer: str | None


_tuple_new = tuple.__new__


def view(turn: Turn, how: str) -> PeerView:
    """What a reader may be shown of ``turn``, and how it got there (spatial, temporal, own, summary)."""
    # built as the tuple it is (a NamedTuple's own __new__ is a Python call), its final part inline:
    # a debate round makes one view per reader and peer
    text = turn.text
    final = text[turn.thinking_chars :] if turn.thinking_closed else ""
    return _tuple_new(PeerView, (turn.id, turn.agent, turn.role, turn.round, text, how, final, turn.answer))


def shown(peer: PeerView, share: Share) -> str:
    """The part of a peer's turn a reader with ``share`` reads."""
    if share == "full":
        return peer.text
    if share == "answer":
        return "(no answer)" if peer.answer is None else f"\\boxed{{{peer.answer}}}"
    return peer.final if peer.final.strip() else "(no conclusion)"


Speak = Callable[[str, Role, int, TurnKind, Sequence[PeerView]], Awaitable[Turn]]
"""``speak(agent, role, round, kind, peers)``: one request of a session, recorded as a turn. Inter-round
policies (a summary) and decision rules (a judge) that need an extra request get it this way."""


def cap(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


@lru_cache(maxsize=1024)
def _system(prompt: str) -> ChatMessage:
    # every turn of a role starts with the same (immutable) system message: build it once
    return ChatMessage(role="system", content=prompt.strip())


def _user(content: str) -> ChatMessage:
    # the model's validator on a dict: what ChatMessage(...) does without its Python __init__
    # (1.1 µs against 1.8 µs, once per turn)
    made: ChatMessage = _validate_message({"role": "user", "content": content})
    return made


_validate_message = ChatMessage.__pydantic_validator__.validate_python


Template = Callable[[str, str, int, str], str]
"""A peer template bound: ``(agent, role, round, text) -> str``."""

_FIELDS = ("agent", "role", "round", "text")


def template(text: str) -> Template:
    """``text.format(agent=, role=, round=, text=)`` as a function of the four values.

    A template that names only those fields, plainly (no conversion, no format spec: every
    template a :class:`~agentgraph.roles.book.Role` ships), becomes a ``%``-format over their tuple,
    which gives the same string in a third of the time (a debate round renders one block per reader
    and peer); any other template is formatted as it is, and fails as ``str.format`` would.

    Examples
    --------
    >>> template("[{agent} ({role}), round {round}]: {text} {{100%}}")("a0", "solver", 1, "7")
    '[a0 (solver), round 1]: 7 {100%}'
    >>> template("{text!r} at {round:02d}")("a0", "solver", 1, "7")
    "'7' at 01"
    """
    pct: list[str] = []
    order: list[int] = []
    try:
        for literal, field, spec, conversion in Formatter().parse(text):
            pct.append(literal.replace("%", "%%"))
            if field is None:
                continue
            if field not in _FIELDS or spec or conversion:
                raise LookupError(field)
            pct.append("%s")
            order.append(_FIELDS.index(field))
    except (LookupError, ValueError):  # not plain: str.format itself, errors included
        fmt = text.format
        return lambda agent, role, rnd, body: fmt(agent=agent, role=role, round=rnd, text=body)
    joined = "".join(pct)
    if order == [0, 1, 2, 3]:
        return lambda agent, role, rnd, body: joined % (agent, role, rnd, body)
    return lambda agent, role, rnd, body: joined % tuple([(agent, role, rnd, body)[i] for i in order])


class Layout:
    """A reader's prompt layout, resolved once per speaker (its card's texts stripped, templates
    bound, the system message built): :meth:`messages` then only formats the peers. The scheduler
    keeps one per speaker; :func:`build_messages` makes one per call."""

    __slots__ = ("head", "limit", "own", "peer", "peer_header", "share", "summary", "system", "tail")

    def __init__(self, role: Role, share: Share = "final", system: bool = True) -> None:
        self.share = share
        self.limit = role.peer_char_limit
        self.peer_header = role.peer_header + "\n"
        self.peer, self.own, self.summary = (
            template(role.peer_template),
            template(role.own_template),
            template(role.summary_template),
        )
        self.system: ChatMessage | None = _system(role.system_prompt) if system else None
        # without a system message (R1 distills), the role's system prompt heads the user turn
        self.tail = role.instruction.strip()
        self.head = "" if system else role.system_prompt.strip() + "\n\n"

    def render(self, peer: PeerView) -> str:
        how = peer.how
        fmt = self.own if how == "own" else self.summary if how == "summary" else self.peer
        # shown() and cap() inline: once per reader and peer
        if self.share == "final":
            text = peer.final.strip() or "(no conclusion)"
        else:
            text = shown(peer, self.share).strip()
        if len(text) > self.limit:
            text = "…" + text[-(self.limit - 1) :]
        return fmt(peer.agent, peer.role, peer.round, text)

    def messages(self, problem: str, peers: Sequence[PeerView]) -> tuple[ChatMessage, ...]:
        text = f"{self.head}Problem:\n{problem.strip()}\n\n"
        if peers:
            text += self.peer_header + "\n\n".join([self.render(p) for p in peers]) + "\n\n"
        if self.system is None:
            return (_user(text + self.tail),)
        return (self.system, _user(text + self.tail))


def build_messages(
    role: Role, problem: str, peers: Sequence[PeerView], share: Share = "final", system: bool = True
) -> tuple[ChatMessage, ...]:
    """The chat messages of a turn of ``role`` on ``problem`` that reads ``peers`` (see the module
    docstring for the layout)."""
    return Layout(role, share, system).messages(problem, peers)
