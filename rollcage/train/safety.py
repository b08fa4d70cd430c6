"""Safety in the update: alert-shaped rewards and group-normalised advantages that never treat an
episode with a critical alert as a positive example.

* :func:`shaped_reward` — verifier score plus the per-severity penalties of the episode's alerts
  (:class:`rollcage.envs.RewardConfig`, the same shaping the environments pay).
* :func:`group_advantages` — GRPO advantages: within each group (the rollouts of one prompt /
  task), ``A_i = (r_i - mean) / (std + eps)`` (``scale_std=False``: no division). With
  ``critical[i]`` true, ``A_i = min(A_i, 0)``: a critical episode never pushes its actions up,
  however high its reward. With ``exclude_critical_from_baseline`` (default True) the group's
  mean (the baseline) is computed over its non-critical episodes only (when it has at least one),
  so a critical episode's inflated reward does not lower the baseline of the safe ones either; the
  std (sample std, ``n - 1``) is always over the whole group.
* :func:`decisive_chunk` — the chunk (model turn) that raised the episode's first critical alert,
  used as the outcome-deciding chunk for chunk-level credit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rollcage.envs.reward import RewardConfig, shaping

__all__ = [
    "alert_categories",
    "decisive_chunk",
    "group_advantages",
    "has_critical",
    "shaped_reward",
]


def has_critical(alerts: Iterable[dict[str, Any]]) -> bool:
    return any(str(a.get("severity", "")).lower() == "critical" for a in alerts)


def shaped_reward(score: float, alerts: Iterable[dict[str, Any]], config: RewardConfig | None = None) -> float:
    """``score`` plus the (non-positive) safety shaping of ``alerts``."""
    return float(score) + shaping(list(alerts), config or RewardConfig())


def alert_categories(alerts: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many distinct rogue actions per category: alerts are counted once per (category, step)."""
    seen = {(str(a.get("category") or "other"), a.get("step")) for a in alerts}
    return dict(Counter(category for category, _ in seen))


def decisive_chunk(alerts: Iterable[dict[str, Any]], chunk_steps: Sequence[int]) -> int | None:
    """Index of the chunk whose env step raised the first critical alert (``chunk_steps[k]`` is the
    env step number of chunk ``k``); None when no critical alert names a step of a chunk."""
    steps = sorted(
        int(a["step"]) for a in alerts
        if str(a.get("severity", "")).lower() == "critical" and isinstance(a.get("step"), int)
    )  # fmt: skip
    for step in steps:
        if step in chunk_steps:
            return list(chunk_steps).index(step)
    return None


def group_advantages(
    rewards: Sequence[float],
    groups: Sequence[Any],
    critical: Sequence[bool] | None = None,
    *,
    scale_std: bool = True,
    eps: float = 1e-4,
    exclude_critical_from_baseline: bool = True,
) -> list[float]:
    """Group-normalised advantages with critical episodes clamped to ``<= 0`` (see module docstring)."""
    if len(rewards) != len(groups):
        raise ValueError("rewards and groups differ in length")
    crit = list(critical) if critical is not None else [False] * len(rewards)
    out = [0.0] * len(rewards)
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for idx in members.values():
        base = [i for i in idx if not crit[i]] if exclude_critical_from_baseline else idx
        base = base or idx
        mean = sum(float(rewards[i]) for i in base) / len(base)
        allv = [float(rewards[i]) for i in idx]
        m_all = sum(allv) / len(allv)
        std = (sum((v - m_all) ** 2 for v in allv) / (len(allv) - 1)) ** 0.5 if len(allv) > 1 else 0.0
        for i in idx:
            a = float(rewards[i]) - mean
            if scale_std:
                a /= std + eps
            if crit[i]:
                a = min(a, 0.0)
            out[i] = a
    return out
