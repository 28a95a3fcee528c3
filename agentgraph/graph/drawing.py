"""Drawing a topology: spatial edges solid, temporal edges dashed and curved, width by
keep-probability, nodes coloured by role and laid out by spatial generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import networkx as nx


class Drawable(Protocol):
    """What drawing reads of a topology (a :class:`~agentgraph.graph.topology.Topology` is one)."""

    graph: dict[str, Any]

    def __len__(self) -> int: ...

    def kind_view(self, kind: Any) -> nx.DiGraph: ...

    def role_of(self, agent: str) -> str: ...

    def edges_of(self, kind: Any) -> list[tuple[str, str]]: ...

    def probability(self, u: str, v: str, kind: Any) -> float: ...


def draw(g: Drawable, path: str | Path, *, title: str | None = None) -> Path:
    """Write ``g`` as a PNG at ``path``."""
    from agentgraph.core.plotting import pyplot

    plt = pyplot()
    sg = g.kind_view("spatial")
    layers: dict[str, int] = {}
    for i, gen in enumerate(nx.topological_generations(sg)):
        for a in gen:
            layers[a] = i
    nx.set_node_attributes(sg, layers, "layer")
    pos = nx.multipartite_layout(sg, subset_key="layer") if sg.number_of_edges() else nx.circular_layout(sg)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(g)), 4.0))
    colors = {
        "solver": "#8ecae6",
        "critic": "#ffb703",
        "verifier": "#90be6d",
        "manager": "#f28482",
        "judge": "#cdb4db",
        "summarizer": "#bde0fe",
        "grader": "#90be6d",
        "stepper": "#8ecae6",
        "finisher": "#219ebc",
    }
    nx.draw_networkx_nodes(
        sg,
        pos,
        ax=ax,
        node_color=[colors.get(g.role_of(a), "#dddddd") for a in sg.nodes],
        node_size=900,
    )
    nx.draw_networkx_labels(sg, pos, ax=ax, labels={a: f"{a}\n{g.role_of(a)}" for a in sg.nodes}, font_size=7)
    for kind, style, rad in (("spatial", "solid", 0.0), ("temporal", "dashed", 0.25)):
        edges = g.edges_of(kind)
        loops = [(u, v) for u, v in edges if u == v]
        edges = [(u, v) for u, v in edges if u != v]
        widths = [0.5 + 3.0 * g.probability(u, v, kind) for u, v in edges]
        if edges:
            nx.draw_networkx_edges(
                sg,
                pos,
                ax=ax,
                edgelist=edges,
                width=widths,
                style=style,
                node_size=900,
                connectionstyle=f"arc3,rad={rad}",
                arrows=True,
                edge_color="#333333" if kind == "spatial" else "#888888",
            )
        if loops:
            nx.draw_networkx_edges(
                sg,
                pos,
                ax=ax,
                edgelist=loops,
                style=style,
                node_size=900,
                arrows=True,
                edge_color="#888888",
            )
    ax.set_title(title or f"{g.graph.get('name', 'topology')} (solid: spatial, dashed: temporal)", fontsize=9)
    ax.axis("off")
    p = Path(path)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return p
