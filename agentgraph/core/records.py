"""Records the framework builds itself, made without validating them again.

Pydantic validates what crosses a boundary: configs, requests from clients, transcripts read back.
A :class:`~agentgraph.core.messages.Turn`, :class:`~agentgraph.core.messages.Usage` or session
result that the scheduler assembles from values it computed (typed end to end under ``mypy
--strict``) gains nothing from a second check, and validating one was the largest single cost of a
turn on a fast backend: ``Turn(**fields)`` 9.7 µs against 2.5 µs here, with pydantic 2.14 on the
2-core box (``bench/scheduler.py``). Pydantic's own ``model_construct`` is slower than validating
(a Python loop over every field), hence this.

:func:`trusted` gives the same object ``cls(**values)`` would for valid values: the same ``__dict__``
in field order (which is the order a record is serialized in), defaults filled (factories called),
the same set of explicitly given fields. An unknown field is refused, as validation would.
``tests/test_records.py`` checks every record of a scripted run against its validated twin.

Examples
--------
>>> from agentgraph.core.messages import Usage
>>> made = trusted(Usage, {'prompt_tokens': 3, 'completion_tokens': 2})
>>> made == Usage(prompt_tokens=3, completion_tokens=2)
True
>>> trusted(Usage, {'prompt': 3})
Traceback (most recent call last):
...
TypeError: Usage has no field 'prompt'
>>> from agentgraph.core.messages import ChatMessage
>>> trusted(ChatMessage, {'role': 'user'})
Traceback (most recent call last):
...
TypeError: ChatMessage needs field 'content'
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)

_Template = tuple[
    dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...], frozenset[str], frozenset[str], tuple[str, ...]
]
_new = object.__new__
_set = object.__setattr__


@cache
def _template(cls: type[BaseModel]) -> _Template:
    """Per class: every field in order with its static default (a placeholder where a factory or
    the caller gives it), the fields made by a factory, all names, the names without a default, and
    the names in order."""
    if cls.__private_attributes__:
        raise TypeError(f"{cls.__name__} has private attributes: build it with validation")
    static: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, f in cls.model_fields.items():
        static[name] = None if f.default is PydanticUndefined else f.default
        if f.default_factory is not None:
            factories.append((name, f.default_factory))  # type: ignore[arg-type]
    required = frozenset(n for n, f in cls.model_fields.items() if f.is_required())
    return static, tuple(factories), frozenset(static), required, tuple(static)


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """``cls(**values)`` for values the framework made itself, without validating them again (a
    dict, not keywords: unpacking thirty keywords costs as much as the rest of this). A dict with
    every field in order (a turn, a session's result) is handed over: it becomes the record's
    ``__dict__``, not copied, so the caller builds a fresh one."""
    static, factories, names, required, order = _template(cls)
    if tuple(values) == order:  # every field, in order (the hot path's records): nothing to fill
        return _made(cls, values, set(names))
    keys = values.keys()
    if not (required <= keys <= names):
        if unknown := sorted(keys - names):
            raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}")
        raise TypeError(f"{cls.__name__} needs field {sorted(required - keys)[0]!r}")
    d = {**static, **values}
    for name, factory in factories:
        if name not in values:
            d[name] = factory()
    return _made(cls, d, set(values))


def _made(cls: type[M], d: dict[str, Any], given: set[str]) -> M:
    m = _new(cls)
    _set(m, "__dict__", d)
    _set(m, "__pydantic_fields_set__", given)
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m
