"""The short forms of a topology the CLI and configs use (``full:3``, ``sc:5``, ``beam:2x3``, a
saved ``.json``): one parser, :func:`from_spec`. ``cascade:…`` is several teams, not one graph:
:func:`agentgraph.shape` parses it (and every other spec through this one)."""

from __future__ import annotations

from pathlib import Path

from agentgraph.core.errors import ConfigError
from agentgraph.graph.generators import chain, full, layered, random_graph, single, star, tree
from agentgraph.graph.scaling import beam, best_of, self_consistency
from agentgraph.graph.topology import Topology


def from_spec(spec: str, role: str = "solver") -> Topology:
    """Parse the short forms the CLI uses.

    ``single``, ``chain:3``, ``star:3``, ``tree:2x2``, ``full:3``, ``layered:2-2-1``,
    ``random:5:0.3[:seed]``, the test-time-scaling shapes ``sc:5``, ``bon:4``, ``beam:2x3[x2]``,
    or a path to a saved topology JSON. (``cascade:…`` is not one graph but several teams:
    :func:`agentgraph.shape` parses it.)

    Examples
    --------
    >>> from_spec("tree:2x1").graph["name"]
    'tree:2x1'
    >>> from_spec("ring:3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agentgraph.core.errors.ConfigError: topology: unknown topology 'ring:3' (use single, chain:N, ...)
    """
    text = spec.strip()
    if text.endswith(".json") or Path(text).is_file():
        return Topology.load(text)
    kind, _, arg = text.partition(":")
    fix = (
        "use single, chain:N, star:N, tree:BxD, full:N, layered:W-W-W, random:N:P[:SEED], sc:N, "
        "bon:N, beam:KxD[xB] or a .json file"
    )
    try:
        if kind == "single" and not arg:
            return single(role)
        if kind == "chain":
            return chain(int(arg), role)
        if kind == "star":
            return star(int(arg), role)
        if kind == "full":
            return full(int(arg), role)
        if kind == "tree":
            b, _, d = arg.partition("x")
            return tree(int(b), int(d), role)
        if kind == "layered":
            return layered([int(w) for w in arg.split("-")], role)
        if kind == "sc":
            return self_consistency(int(arg), role)
        if kind == "bon":
            return best_of(int(arg), role)
        if kind == "beam":
            sizes = [int(x) for x in arg.split("x")]
            if len(sizes) not in (2, 3):
                raise ValueError(arg)
            return beam(sizes[0], sizes[1], sizes[2] if len(sizes) == 3 else 2)
        if kind == "random":
            parts = arg.split(":")
            return random_graph(int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) > 2 else 0, role)
    except ConfigError:
        raise
    except (ValueError, IndexError):
        raise ConfigError("topology", f"cannot parse {spec!r}", fix) from None
    raise ConfigError("topology", f"unknown topology {spec!r}", fix)


__all__ = ["from_spec"]
