"""The viewer in a real browser: Debian's headless Chromium driven by selenium opens the page of a
small run, clicks a session and checks the drawn graph of each round."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentgraph as ag
from agentgraph.backends import Scripted, ScriptedCall
from agentgraph.core.errors import BackendError
from agentgraph.eval.evaluation import evaluate
from agentgraph.serve.viewer import collect, write_viewer

ROOT = Path(__file__).resolve().parent.parent


def agent(call: ScriptedCall) -> str:
    if call.agent == "a0" and call.round == 0:
        raise BackendError("the server went away")  # a failed turn, recorded and never read
    return "\\boxed{42}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("view") / "eval"
    problems = ag.load_dataset("arith:n=3")
    team = ag.Team(ag.full(3), rounds=2, retry=ag.RetryPolicy(attempts=1))
    asyncio.run(evaluate(team, problems, Scripted(default=agent), out, progress=False))
    return out


def test_the_page_embeds_every_session_and_its_turns(run: Path) -> None:
    data = collect(run)
    assert len(data["sessions"]) == 3
    s = data["sessions"][0]
    assert s["failed"] and len(s["turns"]) == 6
    assert [t["error"] is not None for t in s["turns"] if t["agent"] == "a0" and t["round"] == 0] == [True]
    html = write_viewer(run).read_text()
    assert "<script id='data' type='application/json'>" in html and "roundGraph" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/test.sh installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    d = webdriver.Chrome(options=options, service=Service(driver))
    yield d
    d.quit()


def test_a_session_in_the_browser_draws_each_round(run: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    page = write_viewer(run)
    browser.get(page.as_uri())
    items = browser.find_elements(By.CSS_SELECTOR, ".item")
    assert len(items) == 3
    browser.find_element(By.CSS_SELECTOR, "button[data-filter=failed]").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, ".item")) == 3
    browser.find_elements(By.CSS_SELECTOR, ".item")[0].click()

    def agents(rnd: int) -> dict[str, str]:
        nodes = browser.find_elements(By.CSS_SELECTOR, f"svg.graph[data-round='{rnd}'] g.agent")
        return {n.get_attribute("data-agent") or "": n.get_attribute("data-failed") or "" for n in nodes}

    def edges(rnd: int) -> set[tuple[str, str, str]]:
        lines = browser.find_elements(By.CSS_SELECTOR, f"svg.graph[data-round='{rnd}'] line.edge")
        return {
            (
                e.get_attribute("data-from") or "",
                e.get_attribute("data-to") or "",
                e.get_attribute("data-how") or "",
            )
            for e in lines
        }

    assert agents(0) == {"a0": "true", "a1": "false", "a2": "false"}  # the failed turn is marked
    assert agents(1) == {"a0": "false", "a1": "false", "a2": "false"}
    assert edges(0) == set()  # round 0 reads nothing
    # round 1: the full debate reads every round-0 turn that answered — not a0's failed one
    assert edges(1) == {(u, v, "temporal") for u in ("a1", "a2") for v in ("a0", "a1", "a2")}
    text = browser.find_element(By.ID, "main").text
    assert "failed: BackendError" in text and "Answers per round" in text
    shot = ROOT / "docs" / "img" / "viewer.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def test_a_training_run_shows_its_curves_and_edge_probabilities(tmp_path: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    from agentgraph.cli import main

    assert isinstance(browser, WebDriver)
    out = tmp_path / "train"
    argv = [
        "train",
        "graph",
        "--base",
        "chain:3",
        "--dataset",
        "arith:n=4",
        "--steps",
        "3",
        "--group",
        "2",
        "--problems-per-step",
        "1",
    ]
    assert main([*argv, "--backend", "scripted", "--scripted", "tests.agents:noisy", "--out", str(out)]) == 0
    steps = collect(out)["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    browser.get(write_viewer(out).as_uri())
    curves = {
        e.get_attribute("data-curve") for e in browser.find_elements(By.CSS_SELECTOR, "svg[data-curve]")
    }
    assert {"reward", "accuracy", "probabilities"} <= curves
    drawn = browser.find_elements(By.CSS_SELECTOR, "svg[data-curve=probabilities] polyline")
    assert {p.get_attribute("data-edge") for p in drawn} == set(steps[-1]["probabilities"])
    assert all(len((p.get_attribute("points") or "").split()) == 3 for p in drawn)  # one point per step


def test_view_serve_serves_the_page_on_localhost(run: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from tests.servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgraph", "view", str(run), "--serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a test run started in the background (`cmd &` without job control) passes SIGINT down as
        # ignored, and the server would never see the Ctrl-C this test sends
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and page is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/view.html", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200 and "roundGraph" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "serving http://127.0.0.1" in out
