"""The house rules that are checked, not described: no import circle, no module past ~400 lines,
every command's --help works, every command line in the README parses."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import grimp
import networkx as nx
import pytest

from agentgraph.cli import main
from agentgraph.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_no_import_circle() -> None:
    # imports under TYPE_CHECKING are left out: they never run, so they cannot form a circle at import
    # time (the team and the strategy protocol name each other only in annotations)
    graph = grimp.build_graph(
        "agentgraph", include_external_packages=False, exclude_type_checking_imports=True
    )
    g = nx.DiGraph()
    for m in graph.modules:
        for imported in graph.find_modules_directly_imported_by(m):
            g.add_edge(m, imported)
    g.remove_nodes_from(["agentgraph"])  # the package's __init__ re-exports everything by design
    assert list(nx.simple_cycles(g)) == []


def test_import_circle_is_caught(tmp_path: Path) -> None:
    # the check above can fail: a two-module circle in a scratch package is found
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circ import b\n")
    (pkg / "b.py").write_text("from circ import a\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("circ")
        g = nx.DiGraph((m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m))
        assert sorted(map(sorted, nx.simple_cycles(g))) == [["circ.a", "circ.b"]]
    finally:
        sys.path.remove(str(tmp_path))


def test_modules_stay_small() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted((ROOT / "agentgraph").rglob("*.py"))
    }
    assert {k: n for k, n in sizes.items() if n > MAX_LINES} == {}


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*prefix, name)) or [(*prefix, name)]
    return out


def test_the_parser_has_every_command() -> None:
    assert set(_commands(build_parser())) == {
        ("run",),
        ("eval",),
        ("compare",),
        ("show",),
        ("demo",),
        ("serve",),
        ("view",),
        ("train", "graph"),
        ("train", "roles"),
        ("train", "joint"),
    }


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_help_of_every_command(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: agentgraph " + " ".join(command))
    assert "--json" in text and "--config" in text


def test_readme_command_lines_parse() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [m.group(1) for m in re.finditer(r"^agentgraph (.+?)(?:\s+#.*)?$", readme, flags=re.M)]
    assert len(lines) >= 10
    parser = build_parser()
    for line in lines:
        parser.parse_args(shlex.split(line.replace("…", "x")))  # exits (fails the test) on a bad option


def _readme_python() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", readme, flags=re.M | re.S)


def test_readme_python_examples_name_only_what_exists() -> None:
    # the examples run an engine (minutes each); what the layout can break is a name they use, so
    # every import and every ``ag.NAME`` of every block must resolve
    import ast
    import importlib

    import agentgraph as ag

    blocks = _readme_python()
    assert len(blocks) >= 5
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agentgraph"):
                mod = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(mod, alias.name), f"{node.module}.{alias.name}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ag":
                assert hasattr(ag, node.attr), f"ag.{node.attr}"
