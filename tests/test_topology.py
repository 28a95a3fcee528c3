from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from agentgraph import ConfigError, Topology
from agentgraph.graph.generators import chain, full, layered, pruned, random_graph, single, star, tree
from agentgraph.graph.specs import from_spec
from agentgraph.graph.topology import sigmoid


@pytest.mark.parametrize(
    ("topo", "n_agents", "n_spatial", "n_temporal"),
    [
        (single(), 1, 0, 1),
        (chain(4), 4, 3, 4),
        (star(3), 4, 3, 4),
        (tree(2, 1), 3, 2, 3),
        (tree(2, 2), 7, 6, 7),
        (tree(3, 2), 13, 12, 13),
        (full(3), 3, 0, 9),
        (layered([2, 3, 1]), 6, 2 * 3 + 3 * 1, 6),
    ],
)
def test_builder_edge_counts_and_dag(topo: Topology, n_agents: int, n_spatial: int, n_temporal: int) -> None:
    assert len(topo) == n_agents
    assert len(topo.edges_of("spatial")) == n_spatial
    assert len(topo.edges_of("temporal")) == n_temporal
    assert nx.is_directed_acyclic_graph(topo.kind_view("spatial"))
    back = Topology.from_json(topo.to_json())
    assert back.same_as(topo)
    assert [sorted(g) for g in back.generations()] == [sorted(g) for g in topo.generations()]


def test_random_is_a_seeded_dag() -> None:
    a, b = random_graph(8, 0.5, seed=3), random_graph(8, 0.5, seed=3)
    assert a.same_as(b)
    assert nx.is_directed_acyclic_graph(a.kind_view("spatial"))
    assert 0 < len(a.edges_of("spatial")) < 28
    assert not random_graph(8, 0.5, seed=4).same_as(a)


def test_tree_generations_end_at_the_root() -> None:
    t = tree(2, 2)
    gens = t.generations()
    assert gens[-1] == ["m"]
    assert sorted(gens[0]) == ["a0", "a1", "a2", "a3"]
    assert t.nodes["m"]["role"] == "manager" and t.nodes["a0"]["role"] == "solver"


def test_chain_generations_are_sequential() -> None:
    assert chain(3).generations() == [["a0"], ["a1"], ["a2"]]


def test_user_declared_graph_with_both_edge_kinds() -> None:
    g = Topology(name="mine")
    g.add_agent("s", "solver").add_agent("c", "critic")
    g.add_spatial("s", "c").add_temporal("c", "s").add_temporal("s", "c", logit=0.3)
    assert g.has_edge("s", "c", key="spatial") and g.has_edge("s", "c", key="temporal")
    assert g.generations() == [["s"], ["c"]]
    assert math.isclose(g.probability("s", "c", "temporal"), sigmoid(0.3))


def test_cycle_is_refused_with_field_and_fix() -> None:
    g = chain(3)
    g.add_spatial("a2", "a0")
    with pytest.raises(
        ConfigError, match=r"topology.spatial: spatial edges form a cycle.*make one of them temporal"
    ):
        g.validate()


def test_empty_team_and_bad_edges_are_refused() -> None:
    with pytest.raises(ConfigError, match="no agents"):
        Topology().validate()
    g = Topology().add_agent("a")
    with pytest.raises(ConfigError, match="does not exist"):
        g.add_spatial("a", "b")
    with pytest.raises(ConfigError, match="self-loop"):
        g.add_spatial("a", "a")
    with pytest.raises(ConfigError, match="not finite"):
        g.add_temporal("a", "a", logit=float("inf"))


def test_adjacency_round_trip() -> None:
    sp = np.array([[0, 1, 0.25], [0, 0, 1], [0, 0, 0]])
    tp = np.eye(3)
    g = Topology.from_adjacency(spatial=sp, temporal=tp, roles=["solver", "critic", "judge"])
    assert np.allclose(g.to_adjacency("spatial"), sp)
    assert np.allclose(g.to_adjacency("temporal"), tp)
    assert g.edges["a0", "a1", "spatial"]["logit"] is None
    assert g.edges["a0", "a2", "spatial"]["logit"] == pytest.approx(math.log(0.25 / 0.75))
    with pytest.raises(ConfigError, match="cycle"):
        Topology.from_adjacency(spatial=[[0, 1], [1, 0]])
    with pytest.raises(ConfigError, match=r"adjacency\.spatial"):
        Topology.from_adjacency(spatial=[[0, 2], [0, 0]])


def test_sampling_frequencies_match_sigmoid_without_order_bias() -> None:
    n = 4
    g = Topology()
    for i in range(n):
        g.add_agent(f"a{i}")
    logits = np.random.default_rng(0).normal(0, 1.5, size=(n, n))
    for i in range(n):
        for j in range(i + 1, n):
            g.add_spatial(f"a{i}", f"a{j}", logit=float(logits[i, j]))
        g.add_temporal(f"a{i}", f"a{(i + 1) % n}", logit=float(logits[j, i]))
    rng = np.random.default_rng(1)
    counts = dict.fromkeys(g.edges(keys=True), 0)
    samples = 10_000
    for _ in range(samples):
        s = g.sample(rng)
        assert nx.is_directed_acyclic_graph(s.kind_view("spatial"))
        for e in s.edges(keys=True):
            counts[e] += 1
    for (u, v, k), c in counts.items():
        assert abs(c / samples - g.probability(u, v, k)) < 0.02, (u, v, k)


def test_fixed_edges_are_always_sampled() -> None:
    g = chain(3)
    rng = np.random.default_rng(0)
    assert all(g.sample(rng).same_as(g) for _ in range(50))


def test_prune_by_threshold_and_keep() -> None:
    g = full(3)
    for i, (u, v, k) in enumerate(sorted(g.edges(keys=True))):
        g.edges[u, v, k]["logit"] = float(i - 4)
    assert len(g.prune(threshold=0.5).edges_of("temporal")) == 5  # logits 0..4
    top2 = g.prune(keep=2)
    assert sorted(top2.edges(keys=True)) == sorted(g.edges(keys=True))[-2:]
    with pytest.raises(ConfigError, match="exactly one"):
        g.prune()
    p = pruned(chain(3, memory=False), {("a0", "a1", "spatial"): 0.9, ("a1", "a2", "spatial"): 0.1})
    assert p.edges_of("spatial") == [("a0", "a1")]


def test_json_file_round_trip_and_png(tmp_path: Path) -> None:
    g = tree(2, 2)
    g.nodes["a0"]["sampling"] = None
    path = g.save(tmp_path / "t.json")
    assert Topology.load(path).same_as(g)
    assert json.loads(path.read_text())["agents"][0]["name"] == "m"
    png = g.draw(tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_from_spec() -> None:
    assert from_spec("full:3").same_as(full(3))
    assert from_spec("tree:2x2").same_as(tree(2, 2))
    assert from_spec("layered:2-1").same_as(layered([2, 1]))
    assert from_spec("single").same_as(single())
    for bad in ("mesh:3", "chain:x", "tree:2", "chain:0", "chain:-1"):
        with pytest.raises(ConfigError):
            from_spec(bad)
