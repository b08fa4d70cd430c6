"""Safety-aligned data from rollouts: SFT records and DPO pairs in the JSON-lines shapes TRL reads.

``export_sft(records)`` yields ``{"messages": [...]}`` (TRL ``SFTTrainer`` conversational format,
assistant tool calls as ``tool_calls`` with dict arguments, tool results as ``role: tool``; a
``tools`` column is added when the trajectory carries its tool schemas) for every trajectory that
is *successful* and *safe*. ``export_dpo(records)`` yields ``{"prompt", "chosen", "rejected"}``
(TRL ``DPOTrainer`` conversational format: ``prompt`` is the system + first user message,
``chosen``/``rejected`` the rest of each conversation) pairing every *rogue* trajectory of a task
with a safe successful trajectory of the same task (round robin over the safe ones).

Definitions (per trajectory record):

* safe — no alert at or above ``min_severity`` (default ``"low"``; info alerts never count) and
  the record is not marked ``rogue``;
* rogue — marked ``rogue: true`` (scripted rogue policies) or has an alert of severity ``high`` or
  ``critical``;
* successful — ``success`` (or ``verifier.passed``) is true.

Records come from a run directory's ``trajectories.jsonl`` (:func:`read_run`; the rollout
store's file). Fields read, tolerant of several spellings: ``task_id``/``task``/``env_id``,
``messages`` (or ``trajectory.messages``), ``success``/``verifier.passed``/``info.success``,
``alerts``/``episode_alerts``/``steps[].alerts``, ``rogue``, ``tools``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ExportError",
    "export_dpo",
    "export_sft",
    "is_rogue",
    "is_safe",
    "is_success",
    "read_run",
    "record_alerts",
    "record_task",
    "resolve_run",
    "to_trl_messages",
    "write_jsonl",
]

_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class ExportError(ValueError):
    """A run that cannot be found or read."""


def resolve_run(run: str | Path) -> Path:
    """``run`` as a directory (or its ``trajectories.jsonl``), else ``<state dir>/runs/<run>``."""
    p = Path(run)
    if p.is_file():
        return p
    if p.is_dir():
        return p / "trajectories.jsonl"
    state = Path(os.environ.get("ROLLCAGE_STATE_DIR", "/var/lib/rollcage"))
    candidate = state / "runs" / str(run) / "trajectories.jsonl"
    if candidate.is_file():
        return candidate
    raise ExportError(f"no run {str(run)!r}: neither a directory with trajectories.jsonl nor {candidate}")


def read_run(run: str | Path) -> list[dict[str, Any]]:
    """Every trajectory record of a run (blank lines skipped; a bad line is an :class:`ExportError`)."""
    path = resolve_run(run)
    if not path.is_file():
        raise ExportError(f"{path} does not exist")
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if isinstance(rec, dict):
                out.append(rec)
    return out


def record_task(rec: dict[str, Any]) -> str:
    for key in ("task_id", "task", "env_id"):
        value = rec.get(key)
        if isinstance(value, str) and value:
            return value.removeprefix("rollcage:terminal/")
    return "?"


def record_alerts(rec: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("alerts", "episode_alerts"):
        if isinstance(rec.get(key), list):
            return [a for a in rec[key] if isinstance(a, dict)]
    steps = rec.get("steps") or (rec.get("trajectory") or {}).get("steps") or []
    return [a for s in steps if isinstance(s, dict) for a in s.get("alerts") or [] if isinstance(a, dict)]


def _severity(alert: dict[str, Any]) -> int:
    return _RANK.get(str(alert.get("severity", "")).lower(), 0)


def is_success(rec: dict[str, Any]) -> bool:
    if "success" in rec:
        return bool(rec["success"])
    for key in ("verifier", "info"):
        sub = rec.get(key)
        if isinstance(sub, dict) and ("passed" in sub or "success" in sub):
            return bool(sub.get("passed", sub.get("success")))
    return False


def is_rogue(rec: dict[str, Any]) -> bool:
    return bool(rec.get("rogue")) or any(_severity(a) >= _RANK["high"] for a in record_alerts(rec))


def is_safe(rec: dict[str, Any], min_severity: str = "low") -> bool:
    floor = max(1, _RANK.get(min_severity, 1))
    return not rec.get("rogue") and not any(_severity(a) >= floor for a in record_alerts(rec))


def _messages(rec: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        msgs = (rec.get("trajectory") or {}).get("messages")
    return msgs if isinstance(msgs, list) else []


def to_trl_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style chat messages as TRL/transformers chat templates want them: string content,
    ``tool_calls`` as ``{"type": "function", "function": {"name", "arguments": dict}}``."""
    out = []
    for m in messages:
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            continue
        msg: dict[str, Any] = {"role": role, "content": m.get("content") or ""}
        if not isinstance(msg["content"], str):
            msg["content"] = json.dumps(msg["content"])
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function", c)
                args = fn.get("arguments") or {}
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        args = {"_raw": args}
                call = {"type": "function", "function": {"name": fn.get("name"), "arguments": args}}
                if c.get("id"):
                    call["id"] = c["id"]
                calls.append(call)
            msg["tool_calls"] = calls
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if m.get(key):
                    msg[key] = m[key]
        out.append(msg)
    return out


def _split_prompt(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system + messages up to and including the first user message, the rest)."""
    for i, m in enumerate(messages):
        if m["role"] == "user":
            return messages[: i + 1], messages[i + 1 :]
    return [], messages


def export_sft(records: Iterable[dict[str, Any]], min_severity: str = "low") -> Iterator[dict[str, Any]]:
    """SFT records of the safe, successful trajectories (see the module docstring)."""
    for rec in records:
        msgs = to_trl_messages(_messages(rec))
        if not msgs or not is_success(rec) or not is_safe(rec, min_severity):
            continue
        row: dict[str, Any] = {"messages": msgs}
        if isinstance(rec.get("tools"), list):
            row["tools"] = rec["tools"]
        yield row


def export_dpo(records: Iterable[dict[str, Any]], min_severity: str = "low") -> Iterator[dict[str, Any]]:
    """DPO pairs: each rogue trajectory of a task rejected against a safe successful one of the same task."""
    chosen: dict[str, list[list[dict[str, Any]]]] = {}
    rejected: dict[str, list[list[dict[str, Any]]]] = {}
    for rec in records:
        msgs = to_trl_messages(_messages(rec))
        if not msgs:
            continue
        task = record_task(rec)
        if is_rogue(rec):
            rejected.setdefault(task, []).append(msgs)
        elif is_success(rec) and is_safe(rec, min_severity):
            chosen.setdefault(task, []).append(msgs)
    for task in sorted(rejected):
        good = chosen.get(task) or []
        for i, bad in enumerate(rejected[task]):
            if not good:
                break
            prompt, good_rest = _split_prompt(good[i % len(good)])
            _, bad_rest = _split_prompt(bad)
            if not prompt or not good_rest or not bad_rest:
                continue
            yield {"prompt": prompt, "chosen": good_rest, "rejected": bad_rest}


def write_jsonl(rows: Iterable[dict[str, Any]], out: Any) -> int:
    """Write ``rows`` as JSON lines to a text stream; returns how many."""
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
