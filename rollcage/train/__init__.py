"""Training on rollcage environments: credit assignment, safety-aware advantages, data export,
TRL/GEM/verifiers integrations, ``rollcage train`` and the incident experiment.

Heavy imports (torch, trl, gem, verifiers) happen in the submodules that need them.
"""

from __future__ import annotations

from rollcage.train.safety import alert_categories, decisive_chunk, group_advantages, has_critical, shaped_reward

__all__ = ["alert_categories", "decisive_chunk", "group_advantages", "has_critical", "shaped_reward"]
