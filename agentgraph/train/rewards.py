"""What a rollout is rewarded against: the gold answer, the group's own consensus, or a function.

``reward`` on every trainer config (:class:`~agentgraph.train.config.GraphGRPOConfig`,
:class:`~agentgraph.train.config.RoleGRPOConfig`, and so the joint trainer's two):

- ``"gold"`` (default): the dataset's answers; every training problem needs one.
- ``"consensus"`` (label-free, TTRL): a problem's pseudo-label is the plurality answer of the
  sessions rolled out for it in the step — each session's decided answer, one vote per rollout, as
  TTRL votes over its samples. The label must be unique: a tie for the most votes, or no session
  with a parseable answer, gives that problem **no signal** (its sessions are left out of the update,
  as a group of equal rewards is), rather than a coin-flip label. The rewards are then computed as
  with gold, against the pseudo-label; training problems need no gold. Where gold exists, the step
  log reports how often the pseudo-label was right (``label_accuracy``), the share of problems that
  got one (``labelled``) and the mean share of votes behind it (``agreement``).
  ``consensus_min_share`` (default 0) also leaves out a problem whose plurality has fewer than that
  share of its rollouts behind it: a plurality of 2 in 8 is mostly noise when the policy is right
  a quarter of the time (see docs/benchmarks.md, "Label-free role GRPO").
- ``"module:function"``: ``function(result: SessionResult)`` returns a float for the session, or a
  mapping turn id → float for some of its turns (verifiable rewards that are not answer matching: a
  test passed, a format kept). Role training gives every trainable turn of the session the float,
  or the listed turns their values (an unlisted turn is not trained on); graph training takes the
  float, or the mean of the mapping, minus the token cost. Anything else is a :class:`RewardError`.

The known failure of label-free training is a team that learns to agree on the same wrong answer:
agreement rises while accuracy falls. Held-out evaluation still needs gold (a held-out problem
without one is refused at start), and the role trainer's rollback guard (on by default) restores
the best adapters when held-out accuracy drops — the same guard as with gold rewards.

Examples
--------
>>> from agentgraph.train.rewards import plurality
>>> plurality(["12", "12", "7", None])
('12', 0.5)
>>> plurality(["12", "7"]) is None  # a tie: no label
True
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agentgraph.core.answers import answer_key, is_correct
from agentgraph.core.errors import AgentGraphError, ConfigError
from agentgraph.engine.transcript import SessionResult
from agentgraph.train.config import BUILT_IN_REWARDS, RoleGRPOConfig, check_reward
from agentgraph.train.credit import session_reward, turn_rewards

RewardFn = Callable[[SessionResult], "float | Mapping[str, float]"]


class RewardError(AgentGraphError, TypeError):
    """A user reward function returned something that is not a reward."""


def load(spec: str) -> RewardFn | None:
    """The user's reward function for ``module:function`` (None for the built-in rewards)."""
    if check_reward(spec) in BUILT_IN_REWARDS:
        return None
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ConfigError(
            "reward", f"cannot import {module!r} ({e})", "put the module on PYTHONPATH"
        ) from None
    except AttributeError:
        raise ConfigError("reward", f"{module} has no {name!r}", "name a function of that module") from None
    if not callable(fn):
        raise ConfigError("reward", f"{spec} is not callable", "name a function (result) -> float")
    return fn  # type: ignore[no-any-return]


def plurality(answers: Sequence[str | None]) -> tuple[str, float] | None:
    """The most frequent parseable answer and its share of all votes; None on a tie or no answer."""
    keys = [answer_key(a) for a in answers if a is not None]
    counts = Counter(k for k in keys if k is not None)
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    key = top[0][0]
    label = next(a for a in answers if a is not None and answer_key(a) == key)
    return label, top[0][1] / len(answers)


@dataclass(frozen=True)
class Labels:
    """A step's labels, per problem index, and how good they were where gold is known."""

    label: dict[int, str | None]
    agreement: float | None  # mean share of votes behind the labels given
    labelled: float  # share of the step's problems that got a label
    accuracy: float | None  # labels equal to gold, over labelled problems with gold (None: no gold)


def labels(
    results: Sequence[SessionResult], problem_of: Sequence[int], reward: str, min_share: float = 0.0
) -> Labels:
    """The label each problem's sessions are rewarded against (gold, or their consensus: a unique
    plurality with at least ``min_share`` of the votes)."""
    by_problem: dict[int, list[SessionResult]] = {}
    for k, r in enumerate(results):
        by_problem.setdefault(problem_of[k], []).append(r)
    if reward != "consensus":
        return Labels({i: rs[0].gold for i, rs in by_problem.items()}, None, 1.0, None)
    label: dict[int, str | None] = {}
    shares: list[float] = []
    right: list[bool] = []
    for i, rs in by_problem.items():
        voted = plurality([r.answer for r in rs])
        if voted and voted[1] < min_share:
            voted = None
        label[i] = voted[0] if voted else None
        if voted:
            shares.append(voted[1])
            if rs[0].gold is not None:
                right.append(is_correct(voted[0], rs[0].gold))
    return Labels(
        label,
        float(np.mean(shares)) if shares else None,
        len(shares) / max(1, len(by_problem)),
        float(np.mean(right)) if right else None,
    )


def relabel(result: SessionResult, label: str | None) -> SessionResult:
    """``result`` as if ``label`` were its gold (what its rewards are computed against)."""
    if label == result.gold:
        return result
    correct = None if label is None else is_correct(result.answer, label)
    return result.model_copy(update={"gold": label, "correct": correct})


def called(fn: RewardFn, result: SessionResult) -> float | dict[str, float]:
    """``fn(result)``, checked: a float, or a mapping of this session's turn ids to floats."""
    out = fn(result)
    name = getattr(fn, "__qualname__", repr(fn))
    if isinstance(out, bool) or not isinstance(out, int | float | Mapping):
        raise RewardError(
            f"reward {name} returned {type(out).__name__}: return a float or {{turn id: float}}"
        )
    if not isinstance(out, Mapping):
        return float(out)
    ids = {t.id for t in result.turns}
    checked: dict[str, float] = {}
    for tid, v in out.items():
        if tid not in ids:
            raise RewardError(f"reward {name} named turn {tid!r}, which is not in session {result.session}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RewardError(f"reward {name} gave turn {tid} a {type(v).__name__}: use a float")
        checked[tid] = float(v)
    return checked


def need_gold(problems: Sequence[object], reward: str, field: str) -> None:
    """Refuse problems without gold where the reward (or held-out evaluation) needs it."""
    missing = [getattr(p, "id", "?") for p in problems if getattr(p, "answer", None) is None]
    if missing and (reward == "gold" or field == "heldout"):
        why = "held-out evaluation measures accuracy against gold" if field == "heldout" else "reward=gold"
        raise ConfigError(
            field,
            f"{len(missing)} problems have no gold answer (first: {missing[0]}); {why}",
            "give them answers" if field == "heldout" else "use reward=consensus or a reward function",
        )


def turn_rewards_of(
    results: Sequence[SessionResult], problem_of: Sequence[int], config: RoleGRPOConfig, fn: RewardFn | None
) -> tuple[list[dict[str, float]], Labels]:
    """Turn id → reward for each session's trainable turns (role GRPO), under ``config.reward``;
    also the step's labels. A session whose problem got no consensus label gets no rewards."""
    lab = labels(results, problem_of, config.reward, config.consensus_min_share)
    out: list[dict[str, float]] = []
    for k, r in enumerate(results):
        if config.reward == "consensus":
            label = lab.label[problem_of[k]]
            if label is None:
                out.append({})
                continue
            r = relabel(r, label)
        rewards = turn_rewards(r, config)
        if fn is not None:
            value = called(fn, r)
            rewards = (
                {tid: value for tid in rewards}
                if isinstance(value, float)
                else {tid: v for tid, v in value.items() if tid in rewards}
            )
        out.append(rewards)
    return out, lab


def group_session_rewards(
    results: Sequence[SessionResult],
    reward: str,
    fn: RewardFn | None,
    token_cost: float,
    min_share: float = 0.0,
) -> tuple[list[float], Labels]:
    """The rewards of one problem's sessions (graph GRPO), under ``reward``; a group without a
    consensus label gets equal rewards (no signal)."""
    lab = labels(results, [0] * len(results), reward, min_share)
    label = lab.label.get(0)
    return [labelled_value(r, label, reward, fn, token_cost) for r in results], lab


def session_value(result: SessionResult, fn: RewardFn | None, token_cost: float) -> float:
    """A session's reward: the user function's (a mapping: its mean), else correctness; minus the
    token cost."""
    if fn is None:
        return session_reward(result, token_cost)
    value = called(fn, result)
    v = value if isinstance(value, float) else float(np.mean(list(value.values()))) if value else 0.0
    return v - token_cost * result.usage.total_tokens / 1000.0


def labelled_value(
    result: SessionResult, label: str | None, reward: str, fn: RewardFn | None, token_cost: float
) -> float:
    """A session's value under ``reward``: against its group's consensus ``label`` under consensus
    (no label: 0, no signal), else its own gold or the user's function (:func:`session_value`).
    A group's sessions and their counterfactuals (leave-one-out credit) are valued alike."""
    if reward == "consensus":
        if label is None:
            return 0.0
        result = relabel(result, label)
    return session_value(result, fn, token_cost)


def merged(parts: Sequence[Labels]) -> Labels:
    """One step's labels from several problems' (graph GRPO labels each group on its own)."""
    given = [p for p in parts if p.labelled]
    acc = [p.accuracy for p in given if p.accuracy is not None]
    agree = [p.agreement for p in given if p.agreement is not None]
    return Labels(
        {i: p.label.get(0) for i, p in enumerate(parts)},
        float(np.mean(agree)) if agree else None,
        float(np.mean([p.labelled for p in parts])) if parts else 0.0,
        float(np.mean(acc)) if acc else None,
    )


def gold_accuracy(
    results: Sequence[SessionResult], roles: Sequence[str]
) -> tuple[float | None, float | None]:
    """Against gold, where there is gold: the sessions' accuracy and the trained roles' turns'
    (None without gold — never a zero that reads like a result)."""
    graded = [bool(r.correct) for r in results if r.gold is not None]
    own = [
        is_correct(t.answer, r.gold)
        for r in results
        if r.gold is not None
        for t in r.turns
        if t.kind == "agent" and t.role in roles
    ]
    return (float(np.mean(graded)) if graded else None, float(np.mean(own)) if own else None)
