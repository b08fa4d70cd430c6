"""The event record every sensor emits and the attribution it carries.

Attribution travels with the event rather than being joined later, because the incident
rollcage exists for was painful precisely when alerts had to be lined up with training
traces by hand.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

COMMON_FIELDS = ("type", "time", "sandbox_id", "run_id", "episode_id", "step")


def utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. ``2026-11-28T04:22:27.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Attribution:
    """Who an event belongs to: run, episode and step of the agent that caused it."""

    run_id: str | None = None
    episode_id: str | None = None
    step: int | None = None

    def copy(self, **changes: Any) -> Attribution:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Event:
    """One immutable fact: ``type`` plus common fields plus type-specific ``data``."""

    type: str
    sandbox_id: str | None
    attribution: Attribution
    data: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON shape: common fields first, then the data fields."""
        record: dict[str, Any] = {
            "type": self.type,
            "time": self.time,
            "sandbox_id": self.sandbox_id,
            "run_id": self.attribution.run_id,
            "episode_id": self.attribution.episode_id,
            "step": self.attribution.step,
        }
        for key, value in self.data.items():
            if key not in record:
                record[key] = value
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False, default=str)
