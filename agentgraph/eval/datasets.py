"""Datasets: problems with gold answers, from local files, Hugging Face, or a generator.

Specs (one string, as the CLI takes them):

- presets for the files in ``../shared/data`` — ``gsm8k``, ``math500``, ``aime24``, ``svamp``,
  ``mawps-singleop``, ``mawps-multiarith``; the data root is ``$AGENTGRAPH_DATA``, else the first
  ``shared/data`` found beside the working directory or the repository;
- a local ``.jsonl``/``.json`` path; its format is recognised from its fields (GSM8K ``#### n``
  answers, MATH ``problem``/``answer``, SVAMP ``Body``/``Question``/``Answer``, MAWPS
  ``input``/``target``), or mapped explicitly: ``data.jsonl#question=q,answer=a``;
- ``hf:NAME[:CONFIG][@SPLIT]`` — Hugging Face ``datasets.load_dataset`` (a hub name for users with a
  network, or a local directory / data files), with the same recognition and mapping;
- ``arith:ops=+-*,digits=2,n=200,seed=0`` — generated arithmetic, right-sized for the embedded model;
  ``operands=5`` chains 5 numbers (``((12 + 7) * 3) - 5``, left to right): a task that splits into
  steps, for teams whose agents each do one (the ``accumulator`` card);
- ``ledger:events=5,n=200,seed=0`` — generated bookkeeping: a stock that goes up and down over a few
  events, asked for at the end (a second task with steps, in words).

Every problem has an ``id`` (stable across runs: resuming relies on it), a ``question`` and a gold
``answer``. A row without a gold answer, a missing field, a non-UTF-8 file or an empty dataset is a
:class:`ConfigError` naming the file, row and field — unless the caller asks for ``gold="optional"``
(label-free training: ``reward="consensus"``), when a row without one gets ``answer=None``.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentgraph.core.errors import ConfigError


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str
    answer: str | None = None  # None: no gold (label-free training only)


Gold = Literal["required", "optional"]


def _num(x: Any) -> str:
    f = float(x)
    return str(int(f)) if f.is_integer() else f"{f:g}"


def _gsm8k_answer(row: Mapping[str, Any]) -> str:
    text = str(row["answer"])
    if "####" not in text:
        return text.strip()
    return text.rsplit("####", 1)[1].strip().replace(",", "")


# format name → (fields that identify it, question builder, answer builder)
Extractor = tuple[tuple[str, ...], Callable[[Mapping[str, Any]], str], Callable[[Mapping[str, Any]], str]]
FORMATS: dict[str, Extractor] = {
    "gsm8k": (("question", "answer"), lambda r: str(r["question"]), _gsm8k_answer),
    "math": (("problem", "answer"), lambda r: str(r["problem"]), lambda r: str(r["answer"]).strip()),
    "svamp": (
        ("Body", "Question", "Answer"),
        lambda r: f"{str(r['Body']).strip()} {str(r['Question']).strip()}",
        lambda r: _num(r["Answer"]),
    ),
    "mawps": (("input", "target"), lambda r: str(r["input"]), lambda r: _num(r["target"])),
}

PRESETS: dict[str, tuple[str, str]] = {
    "gsm8k": ("gsm8k/test.jsonl", "gsm8k"),
    "math500": ("math500/test.jsonl", "math"),
    "aime24": ("aime24/test.jsonl", "math"),
    "svamp": ("svamp/test.jsonl", "svamp"),
    "mawps-singleop": ("mawps/singleop.jsonl", "mawps"),
    "mawps-multiarith": ("mawps/multiarith.jsonl", "mawps"),
}


def data_root() -> Path:
    env = os.environ.get("AGENTGRAPH_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]  # the checkout (agentgraph/eval/ is two below)
    for base in (Path.cwd(), here):
        for cand in (base / "shared" / "data", base.parent / "shared" / "data"):
            if cand.is_dir():
                return cand
    raise ConfigError(
        "dataset", "the benchmark data folder was not found", "set AGENTGRAPH_DATA=/path/to/shared/data"
    )


def _detect(fields: Iterable[str], where: str) -> str:
    keys = set(fields)
    for name in ("svamp", "gsm8k", "math", "mawps"):
        if set(FORMATS[name][0]) <= keys:
            return name
    raise ConfigError(
        f"dataset {where}",
        f"cannot tell the format from fields {sorted(keys)[:8]}",
        "map them explicitly: FILE#question=FIELD,answer=FIELD",
    )


def _mapping(text: str, where: str, gold: Gold = "required") -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, field = part.partition("=")
        if not eq or key not in ("question", "answer", "id"):
            raise ConfigError(
                f"dataset {where}", f"bad field mapping {part!r}", "use #question=FIELD,answer=FIELD"
            )
        out[key] = field
    if "question" not in out or ("answer" not in out and gold == "required"):
        raise ConfigError(f"dataset {where}", "the mapping needs question= and answer=", "add both")
    out.setdefault("answer", "answer")
    return out


def rows_to_problems(
    rows: Iterable[Mapping[str, Any]],
    where: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    gold: Gold = "required",
) -> list[Problem]:
    problems: list[Problem] = []
    rows = list(rows)
    if mapping is None and fmt is None and rows:
        # the format is recognised from the fields of the first rows together, so one broken row is
        # reported as that row's missing field rather than as an unknown format
        fmt = _detect({k for r in rows[:50] if isinstance(r, Mapping) for k in r}, where)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ConfigError(f"dataset {where} row {i + 1}", "is not a JSON object", "one object per line")
        if mapping is not None:
            for key in ("question", "answer") if gold == "required" else ("question",):
                if mapping[key] not in row:
                    raise ConfigError(
                        f"dataset {where} row {i + 1}.{mapping[key]}", "missing", "fix the mapping or the row"
                    )
            q, a = str(row[mapping["question"]]), row.get(mapping["answer"])
            answer = "" if a is None else (_num(a) if isinstance(a, int | float) else str(a).strip())
            pid = str(row.get(mapping.get("id", "id"), i))
        else:
            name = fmt or _detect(row.keys(), where)
            fields, qf, af = FORMATS[name]
            for f in fields if gold == "required" else fields[:-1]:
                if f not in row:
                    raise ConfigError(
                        f"dataset {where} row {i + 1}.{f}", "missing", f"every {name} row needs {f}"
                    )
            if row.get(fields[-1]) is None:
                answer = ""
            else:
                try:
                    answer = af(row)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"dataset {where} row {i + 1}.{fields[-1]}",
                        f"bad gold answer {row[fields[-1]]!r}",
                        "fix the row",
                    ) from None
            q = qf(row)
            pid = str(row.get("id", row.get("ID", row.get("unique_id", i))))
        if not answer and gold == "required":
            raise ConfigError(
                f"dataset {where} row {i + 1}", "has no gold answer", "drop the row or fill its answer"
            )
        if not q.strip():
            raise ConfigError(f"dataset {where} row {i + 1}", "has an empty question", "drop the row")
        problems.append(Problem(id=pid, question=q, answer=answer or None))
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):  # ids must be unique for resuming; fall back to row numbers
        problems = [p.model_copy(update={"id": str(i)}) for i, p in enumerate(problems)]
    return problems


def _read_file(path: Path) -> list[Any]:
    if not path.is_file():
        raise ConfigError("dataset", f"file {str(path)!r} does not exist", "check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("dataset", f"{path} is not UTF-8 text", "re-encode it as UTF-8") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"dataset {path.name}", f"invalid JSON at line {e.lineno}", "fix the file"
            ) from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise ConfigError(
                f"dataset {path.name}", "expected a list of objects", "use JSONL or a JSON list"
            )
        return data
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ConfigError(
                f"dataset {path.name} line {n}", "is not valid JSON", "one JSON object per line"
            ) from None
    return rows


def arith(ops: str = "+-", digits: int = 2, n: int = 200, seed: int = 0, operands: int = 2) -> list[Problem]:
    """Generated problems ``What is a op b?`` with exact integer answers; with ``operands`` > 2, a
    chain evaluated left to right, bracketed where precedence would say otherwise.

    Examples
    --------
    >>> [p.question for p in arith(ops="+*", operands=4, n=2, digits=1, seed=1)]
    ['What is (2 + 9 + 4) * 7?', 'What is (7 + 6) * 1 * 0?']
    >>> arith(ops="+*", operands=4, n=2, digits=1, seed=1)[0].answer
    '105'
    """
    if not ops or any(o not in "+-*" for o in ops):
        raise ConfigError("dataset arith.ops", f"{ops!r} must use + - *", "e.g. ops=+-*")
    if not 1 <= digits <= 9:
        raise ConfigError("dataset arith.digits", f"{digits} is outside 1..9", "use 1 to 9 digits")
    if not 1 <= n <= 1_000_000:
        raise ConfigError("dataset arith.n", f"{n} is outside 1..1000000", "ask for 1 or more problems")
    if not 2 <= operands <= 9:
        raise ConfigError("dataset arith.operands", f"{operands} is outside 2..9", "use 2 to 9 numbers")
    rng = random.Random(seed)
    lo, hi = 10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1
    out = []
    for i in range(n):
        # the two-operand draw order (a, b, op) is kept so existing arith datasets stay the same
        a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(ops)
        text, val, additive = f"{a} {op} {b}", _apply(a, op, b), op != "*"
        for _ in range(operands - 2):
            c, op = rng.randint(lo, hi), rng.choice(ops)
            if op == "*" and additive:
                text = f"({text})"
            text, val, additive = f"{text} {op} {c}", _apply(val, op, c), additive or op != "*"
            if op == "*":
                additive = False
        out.append(Problem(id=f"arith-{seed}-{i}", question=f"What is {text}?", answer=str(val)))
    return out


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


LEDGER_ITEMS = ("apples", "books", "chairs", "boxes", "coins", "tickets")


def ledger(events: int = 5, n: int = 200, seed: int = 0) -> list[Problem]:
    """Generated bookkeeping: a stock, ``events`` changes to it in words, the count asked at the end.

    Examples
    --------
    >>> p = ledger(events=3, n=1, seed=0)[0]
    >>> p.question.split(". ")[:3]
    ['A shop has 68 boxes', 'It buys 2 boxes', 'It sells 17 boxes']
    >>> p.answer
    '23'
    """
    if not 1 <= events <= 12:
        raise ConfigError("dataset ledger.events", f"{events} is outside 1..12", "use 1 to 12 events")
    if not 1 <= n <= 1_000_000:
        raise ConfigError("dataset ledger.n", f"{n} is outside 1..1000000", "ask for 1 or more problems")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        item, stock = rng.choice(LEDGER_ITEMS), rng.randint(20, 80)
        parts = [f"A shop has {stock} {item}."]
        for _ in range(events):
            if stock > 5 and rng.random() < 0.5:
                k = rng.randint(1, min(stock - 1, 30))
                stock -= k
                parts.append(f"It sells {k} {item}.")
            else:
                k = rng.randint(1, 30)
                stock += k
                parts.append(f"It buys {k} {item}.")
        parts.append(f"How many {item} does it have now?")
        out.append(Problem(id=f"ledger-{seed}-{i}", question=" ".join(parts), answer=str(stock)))
    return out


def _parse_generated(kind: str, args: str) -> list[Problem]:
    fields = {"arith": ("ops", "digits", "n", "seed", "operands"), "ledger": ("events", "n", "seed")}[kind]
    example = "arith:ops=+-*,digits=2,operands=2,n=200,seed=0" if kind == "arith" else "ledger:events=5,n=200"
    kw: dict[str, Any] = {}
    for part in filter(None, args.split(",")):
        key, eq, val = part.partition("=")
        if not eq or key not in fields:
            raise ConfigError("dataset", f"bad {kind} option {part!r}", f"use {example}")
        try:
            kw[key] = val if key == "ops" else int(val)
        except ValueError:
            raise ConfigError(
                f"dataset {kind}.{key}", f"{val!r} is not an integer", "use a whole number"
            ) from None
    return arith(**kw) if kind == "arith" else ledger(**kw)


def _load_hf(spec: str, gold: Gold = "required") -> list[Problem]:
    rest, _, split = spec.partition("@")
    name, _, config = rest.partition(":")
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "dataset", "hf: specs need the `datasets` package", "pip install datasets"
        ) from None
    try:
        ds = datasets.load_dataset(name, config or None, split=split or "test")
    except Exception as e:  # datasets raises many types for a missing name, split or network
        raise ConfigError(
            "dataset",
            f"cannot load hf:{spec} ({type(e).__name__}: {str(e)[:160]})",
            "check the name and split",
        ) from None
    return rows_to_problems(ds, f"hf:{spec}", gold=gold)


def load_dataset(spec: str, *, limit: int | None = None, gold: Gold = "required") -> list[Problem]:
    """Problems for a spec (see the module docstring); the first ``limit`` of them if given.
    ``gold="optional"`` accepts rows without a gold answer (label-free training)."""
    if limit is not None and limit < 1:
        raise ConfigError("limit", f"{limit} is not ≥ 1", "use --limit 1 or more, or leave it out")
    spec = spec.strip()
    if not spec:
        raise ConfigError("dataset", "empty spec", "e.g. gsm8k, arith:n=50 or data.jsonl")
    kind, _, rest = spec.partition(":")
    if kind in ("arith", "ledger"):
        problems = _parse_generated(kind, rest)
    elif kind == "hf" and rest:
        problems = _load_hf(rest, gold)
    elif spec in PRESETS:
        rel, fmt = PRESETS[spec]
        path = data_root() / rel
        problems = rows_to_problems(_read_file(path), path.name, fmt, gold=gold)
    else:
        file, _, mapping = spec.partition("#")
        path = Path(file).expanduser()
        if path.suffix not in (".jsonl", ".json"):
            known = ", ".join(PRESETS)
            raise ConfigError(
                "dataset", f"unknown dataset {spec!r}", f"use {known}, arith:..., hf:NAME or a .jsonl file"
            )
        problems = rows_to_problems(
            _read_file(path), path.name, None, _mapping(mapping, path.name, gold) if mapping else None, gold
        )
    if not problems:
        raise ConfigError("dataset", f"{spec!r} has no problems", "use a file with at least one row")
    return problems[:limit] if limit is not None else problems
