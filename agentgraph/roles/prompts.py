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


def view(turn: Turn, how: str) -> PeerView:
    """What a reader may be shown of ``turn``, and how it got there (spatial, temporal, own, summary)."""
    return PeerView(turn.id, turn.agent, turn.role, turn.round, turn.text, how, turn.final, turn.answer)


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


def render_peer(reader: Role, peer: PeerView, share: Share = "final") -> str:
    how = peer.how
    template = (
        reader.own_template
        if how == "own"
        else reader.summary_template
        if how == "summary"
        else reader.peer_template
    )
    return template.format(
        agent=peer.agent,
        role=peer.role,
        round=peer.round,
        text=cap(shown(peer, share), reader.peer_char_limit),
    )


@lru_cache(maxsize=1024)
def _system(prompt: str) -> ChatMessage:
    # every turn of a role starts with the same (immutable) system message: build it once
    return ChatMessage(role="system", content=prompt.strip())


def build_messages(
    role: Role, problem: str, peers: Sequence[PeerView], share: Share = "final", system: bool = True
) -> tuple[ChatMessage, ...]:
    head = f"Problem:\n{problem.strip()}\n\n"
    if peers:
        head += role.peer_header + "\n" + "\n\n".join([render_peer(role, p, share) for p in peers]) + "\n\n"
    if not system:
        user = f"{role.system_prompt.strip()}\n\n{head}{role.instruction.strip()}"
        return (ChatMessage(role="user", content=user),)
    return (_system(role.system_prompt), ChatMessage(role="user", content=head + role.instruction.strip()))
