"""How a turn's chat messages are laid out.

What agents share comes first so vLLM's prefix cache can reuse it: the role's system prompt, then
the problem, then the peers' messages, then the role's instruction. Peer text is data: it is
length-capped (``Role.peer_char_limit``, keeping the end, where answers are) and only ever shown to
the model — the framework never interprets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentgraph.messages import ChatMessage
from roles import Role


@dataclass(frozen=True)
class PeerView:
    """One message shown to a reader, and how it reached it."""

    turn_id: str
    agent: str
    role: str
    round: int
    text: str
    how: str  # "spatial", "temporal", "own" or "summary"


def cap(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def render_peer(reader: Role, peer: PeerView) -> str:
    template = {
        "own": reader.own_template,
        "summary": reader.summary_template,
    }.get(peer.how, reader.peer_template)
    return template.format(
        agent=peer.agent, role=peer.role, round=peer.round, text=cap(peer.text, reader.peer_char_limit)
    )


def build_messages(role: Role, problem: str, peers: Sequence[PeerView]) -> tuple[ChatMessage, ...]:
    parts = [f"Problem:\n{problem.strip()}"]
    if peers:
        parts.append(role.peer_header + "\n" + "\n\n".join(render_peer(role, p) for p in peers))
    parts.append(role.instruction.strip())
    return (
        ChatMessage(role="system", content=role.system_prompt.strip()),
        ChatMessage(role="user", content="\n\n".join(parts)),
    )
