from __future__ import annotations

import time
from pathlib import Path

import pytest
from math_verify.errors import TimeoutException

from agentgraph import ConfigError, answer_key, extract, is_correct
from agentgraph.core import answers
from agentgraph.roles.book import RoleBook, load_role


def test_default_cards() -> None:
    book = RoleBook.default()
    assert {"solver", "critic", "verifier", "summarizer", "judge", "manager"} <= set(book)
    assert "boxed" in book["solver"].instruction
    assert book["summarizer"].answer_format == "free"
    assert book["judge"].sampling.temperature == 0.0


def test_user_card_by_path(tmp_path: Path) -> None:
    card = tmp_path / "skeptic.yaml"
    card.write_text(
        "system_prompt: Doubt everything.\ninstruction: Answer in \\boxed{}.\nsampling: {max_tokens: 9}\n"
    )
    book = RoleBook.default().with_cards(card)
    assert book["skeptic"].sampling.max_tokens == 9


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("system_prompt: x\n", "instruction"),
        ("system_prompt: x\ninstruction: y\nsampling: {temperature: hot}\n", "sampling.temperature"),
        ("system_prompt: x\ninstruction: y\nvoice: loud\n", "voice"),
    ],
)
def test_bad_cards(tmp_path: Path, content: str, match: str) -> None:
    card = tmp_path / "bad.yaml"
    card.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_role(card)


def test_non_utf8_and_missing_card(tmp_path: Path) -> None:
    card = tmp_path / "latin.yaml"
    card.write_bytes(b"system_prompt: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_role(card)
    with pytest.raises(ConfigError, match="does not exist"):
        load_role(tmp_path / "nope.yaml")


def test_unknown_role() -> None:
    with pytest.raises(ConfigError, match="unknown role 'wizard'"):
        RoleBook.default()["wizard"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{7}", "7"),
        ("first \\boxed{3} then \\boxed{5}", "5"),
        ("The answer is 12.", "12"),
        ("42", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("no answer at all", None),
        ("", None),
    ],
)
def test_extract(text: str, answer: str | None) -> None:
    assert extract(text) == answer


def test_correctness_and_keys() -> None:
    assert is_correct("7", "7") and is_correct("7.0", "7") and is_correct("\\frac{1}{2}", "0.5")
    assert not is_correct("8", "7")
    assert not is_correct(None, "7")  # unparseable is wrong, never right
    assert answer_key("7.0") == answer_key("7") == "7"
    assert answer_key("1,000") == "1000"


def test_hostile_output_is_bounded() -> None:
    evil = "\\boxed{" * 5000 + "}" * 10 + "import os; os.system('rm -rf /')"
    start = time.perf_counter()
    out = extract(evil + " unique")  # not a cached call
    elapsed = time.perf_counter() - start
    assert out is None  # unbalanced boxes and code are no answer, and nothing ran
    # only the last MAX_CHARS are read, and each math-verify parse is under its own time limit
    assert elapsed < 2 * answers.TIMEOUT_S


def test_a_timeout_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    real = answers.parse
    calls = {"n": 0}

    def slow_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutException("slow machine")
        return real(*args, **kwargs)

    monkeypatch.setattr(answers, "parse", slow_once)
    text = "we get x = \\frac{3}{4} in the end, a fresh text"
    assert extract(text) is None  # timed out: no answer this time
    assert extract(text) == "\\frac{3}{4}"  # asked again, parsed again: the timeout was not cached
