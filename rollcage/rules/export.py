"""Alert exporters: Falco JSON lines, OCSF Detection Finding, Prometheus counters.

Each takes an :class:`~rollcage.rules.engine.Alert` or an ``alert`` event dict as stored
(docs/events.md); a dict lacks the rule's tags and output fields, which are then rebuilt from the
MITRE ids, the category and the attribution.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from rollcage.rules.engine import Alert
from rollcage.rules.ruleset import SEVERITY_TO_PRIORITY

_OCSF_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_OCSF_SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
_OCSF_VERSION = "1.3.0"


def _record(alert: Alert | dict[str, Any]) -> tuple[dict[str, Any], list[str], str, dict[str, Any]]:
    """(alert dict, tags, Falco priority, output fields) for either input shape."""
    if isinstance(alert, Alert):
        record = alert.to_dict()
        return record, list(alert.tags), alert.priority, dict(alert.output_fields)
    record = dict(alert)
    tags = [*record.get("mitre", []), record.get("category") or ""]
    priority = SEVERITY_TO_PRIORITY.get(str(record.get("severity")), "Warning")
    return record, [t for t in tags if t], priority, {}


def to_falco(alert: Alert | dict[str, Any], *, hostname: str | None = None) -> dict[str, Any]:
    """Falco's JSON output shape: time, rule, priority, output, output_fields, tags, source, hostname."""
    record, tags, priority, fields = _record(alert)
    evidence = record.get("evidence") or [{}]
    fields.update(
        {
            "evt.type": evidence[0].get("type") if isinstance(evidence[0], dict) else None,
            "proc.pid": record.get("pid"),
            "rollcage.sandbox_id": record.get("sandbox_id"),
            "rollcage.run_id": record.get("run_id"),
            "rollcage.episode_id": record.get("episode_id"),
            "rollcage.step": record.get("step"),
            "rollcage.category": record.get("category"),
            "rollcage.severity": record.get("severity"),
            "rollcage.action": record.get("action"),
        }
    )
    return {
        "time": record.get("time"),
        "rule": record.get("rule"),
        "priority": priority,
        "output": record.get("output", ""),
        "output_fields": fields,
        "tags": tags,
        "source": "rollcage",
        "hostname": hostname or socket.gethostname(),
    }


def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def to_ocsf(alert: Alert | dict[str, Any], *, product_version: str = "0.1.0") -> dict[str, Any]:
    """An OCSF Detection Finding (class_uid 2004) for the alert."""
    record, tags, _priority, _fields = _record(alert)
    severity_id = _OCSF_SEVERITY.get(str(record.get("severity")), 0)
    evidences = []
    for ev in record.get("evidence") or []:
        if not isinstance(ev, dict):
            continue
        item: dict[str, Any] = {"data": ev}
        if ev.get("pid") is not None or ev.get("cmdline") or ev.get("command"):
            item["process"] = {"pid": ev.get("pid"), "cmd_line": ev.get("cmdline") or ev.get("command")}
        if ev.get("dst_ip"):
            item["dst_endpoint"] = {"ip": ev.get("dst_ip"), "port": ev.get("dst_port"), "domain": ev.get("domain")}
        evidences.append(item)
    return {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "severity_id": severity_id,
        "severity": _OCSF_SEVERITY_NAME.get(severity_id, "Unknown"),
        "status_id": 1,
        "status": "New",
        "time": _epoch_ms(record.get("time")),
        "message": record.get("output", ""),
        "finding_info": {
            "title": record.get("rule"),
            "uid": f"{record.get('sandbox_id')}:{record.get('time')}:{record.get('rule')}",
            "types": [record.get("category")],
            "analytic": {"name": record.get("rule"), "type_id": 1, "type": "Rule"},
            "attacks": [{"technique": {"uid": t}} for t in record.get("mitre", [])],
        },
        "evidences": evidences,
        "metadata": {
            "version": _OCSF_VERSION,
            "product": {"name": "rollcage", "vendor_name": "rollcage", "version": product_version},
            "labels": tags,
        },
        "unmapped": {
            "sandbox_id": record.get("sandbox_id"),
            "run_id": record.get("run_id"),
            "episode_id": record.get("episode_id"),
            "step": record.get("step"),
            "pid": record.get("pid"),
            "action": record.get("action"),
        },
    }


class AlertCounters:
    """Alert counts by rule, category and severity, printable as Prometheus text."""

    def __init__(self) -> None:
        self.by_labels: dict[tuple[str, str, str], int] = {}

    def add(self, alert: Alert | dict[str, Any]) -> None:
        record = alert.to_dict() if isinstance(alert, Alert) else alert
        key = (str(record.get("rule")), str(record.get("category")), str(record.get("severity")))
        self.by_labels[key] = self.by_labels.get(key, 0) + 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"rule": {}, "category": {}, "severity": {}}
        for (rule, category, severity), n in self.by_labels.items():
            for kind, value in (("rule", rule), ("category", category), ("severity", severity)):
                out[kind][value] = out[kind].get(value, 0) + n
        return out

    def prometheus(self) -> str:
        """Prometheus text exposition of ``rollcage_alerts_total``."""
        lines = [
            "# HELP rollcage_alerts_total Alerts raised by rollcage rules.",
            "# TYPE rollcage_alerts_total counter",
        ]
        for (rule, category, severity), n in sorted(self.by_labels.items()):
            labels = f'rule="{_esc(rule)}",category="{_esc(category)}",severity="{_esc(severity)}"'
            lines.append(f"rollcage_alerts_total{{{labels}}} {n}")
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
