"""Rewards and group-relative advantages, for the graph and the role learners alike.

- a **session** (graph GRPO) earns ``correct − token_cost · tokens / 1000``;
- a **turn** (role GRPO) of a trainable role earns ``α · team correct + (1 − α) · own answer correct
  + format_reward · parseable``;
- an **edge** of a sampled graph (graph GRPO, ``credit="leave-one-out"``) earns the difference
  reward ``r(g) − r(g without v)`` of the agent ``v`` whose turn it changes (:func:`credited`), so an
  edge into an agent whose vote is then cut, or whose vote adds nothing, is judged by that agent's
  worth to the team rather than by the whole graph's outcome;
- an **advantage** is a reward minus its group's mean, divided by the group's std (TRL's
  ``scale_rewards="group"``: unbiased std, eps 1e-4), by the batch's std (``"batch"``) or by nothing
  (``"none"``). A graph's group is the ``G`` graphs sampled for one problem; a turn's group is the
  turns of one (problem, role, round) across the ``G`` sessions of that problem.

Examples
--------
>>> advantages([1.0, 0.0, 0.0, 1.0]).round(3).tolist()
[0.866, -0.866, -0.866, 0.866]
>>> advantages([1.0, 0.0], scale="none").tolist()
[0.5, -0.5]
>>> credited([("x", "t", "spatial"), ("t", "decision", "spatial")], roots={"decision"})
['t', 't']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

import numpy as np

from agentgraph.core.answers import is_correct
from agentgraph.engine.transcript import SessionResult
from agentgraph.train.config import RoleGRPOConfig, ScaleRewards

EPS = 1e-4


def advantages(
    rewards: Sequence[float], *, scale: ScaleRewards = "group", eps: float = EPS, batch_std: float = 0.0
) -> np.ndarray:
    """``(r − mean) / (std + eps)`` within one group; the divisor follows ``scale``."""
    r = np.asarray(rewards, dtype=np.float64)
    adv: np.ndarray = r - r.mean()
    if scale == "group":
        adv = adv / ((r.std(ddof=1) if len(r) > 1 else 0.0) + eps)
    elif scale == "batch":
        adv = adv / (batch_std + eps)
    return adv


def session_reward(result: SessionResult, token_cost: float = 0.0) -> float:
    """A graph's reward: the team's correctness minus ``token_cost`` per 1,000 tokens."""
    return float(bool(result.correct)) - token_cost * result.usage.total_tokens / 1000.0


def turn_rewards(result: SessionResult, config: RoleGRPOConfig) -> dict[str, float]:
    """Turn id → reward, for the agent turns of trainable roles that got an answer from the engine."""
    team = float(bool(result.correct))
    out: dict[str, float] = {}
    for t in result.turns:
        if t.kind != "agent" or t.role not in config.train_roles or not t.ok:
            continue
        own = float(result.gold is not None and is_correct(t.answer, result.gold))
        fmt = config.format_reward * float(t.answer is not None)
        out[t.id] = config.alpha * team + (1 - config.alpha) * own + fmt
    return out


def group_advantages(
    groups: Mapping[Any, list[tuple[str, float]]], config: RoleGRPOConfig
) -> tuple[dict[str, float], int, int]:
    """Member id → advantage within each group; also (groups kept, groups dropped).

    A group of one, or (with ``drop_zero_variance``) one whose rewards are all equal, carries no
    signal and is dropped.
    """
    all_rewards = [r for members in groups.values() for _, r in members]
    batch_std = float(np.std(all_rewards, ddof=1)) if len(all_rewards) > 1 else 0.0
    out: dict[str, float] = {}
    kept = dropped = 0
    for members in groups.values():
        rewards = [r for _, r in members]
        if len(rewards) < 2 or (config.drop_zero_variance and max(rewards) == min(rewards)):
            dropped += 1
            continue
        kept += 1
        adv = advantages(rewards, scale=config.scale_rewards, batch_std=batch_std)
        for (member, _), a in zip(members, adv.tolist(), strict=True):
            out[member] = a
    return out, kept, dropped


def credited(edges: Sequence[tuple[str, str, str]], roots: Set[str]) -> list[str]:
    """Per edge ``u → v``, the agent whose difference reward credits it under leave-one-out: ``v``,
    whose turn the edge changes; ``u`` when ``v`` is a root (the edge adds ``u``'s voice to the
    decision, and a root cannot be left out)."""
    return [u if v in roots else v for u, v, _ in edges]


def difference_advantages(
    rewards: Sequence[float], without: Sequence[Mapping[str, float]], *, eps: float = EPS, scale: bool = True
) -> dict[str, np.ndarray]:
    """Per agent ``v``: ``r(g) − r(g without v)`` over a group's graphs, normalised within the group
    (``scale``; else the raw differences). An agent missing from a graph (dropped) made no
    difference there: 0."""
    agents = sorted({v for w in without for v in w})
    out: dict[str, np.ndarray] = {}
    for v in agents:
        d = [r - w.get(v, r) for r, w in zip(rewards, without, strict=True)]
        out[v] = advantages(d, eps=eps) if scale else np.asarray(d, dtype=np.float64)
    return out
