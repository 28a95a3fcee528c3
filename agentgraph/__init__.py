"""agentgraph: teams of small reasoning models on networkx graphs, served by vLLM, trained with GRPO.

The public API::

    import agentgraph as ag
    from topologies import full

    team = ag.Team(full(3), rounds=2, inter_round="summarize", decision="majority")
    async with ag.backends.VLLM() as engine:          # embedded default model
        result = await team.solve("Tom has 3 apples and buys 4 more. How many?", engine)
    print(result.answer, result.usage.completion_tokens)
"""

from agentgraph import backends
from agentgraph.answers import answer_key, extract, is_correct
from agentgraph.decisions import Decision
from agentgraph.errors import BackendError, ConfigError
from agentgraph.messages import ChatMessage, Turn, Usage
from agentgraph.sampling import Sampling, SamplingOverrides
from agentgraph.team import Team
from agentgraph.topology import Topology
from agentgraph.transcript import SessionResult, TranscriptWriter, load

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ChatMessage",
    "ConfigError",
    "Decision",
    "Sampling",
    "SamplingOverrides",
    "SessionResult",
    "Team",
    "Topology",
    "TranscriptWriter",
    "Turn",
    "Usage",
    "answer_key",
    "backends",
    "extract",
    "is_correct",
    "load",
]
