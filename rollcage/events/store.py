"""Append-only SQLite event store (WAL mode).

One table, one row per event; UPDATE and DELETE are refused by triggers so an agent
that later gains write access to the supervisor's API still cannot rewrite history.
``synchronous=NORMAL`` in WAL mode makes a committed event survive a crash of the
process (not a power cut), at a cost of tens of microseconds per event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rollcage.events.model import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    sandbox_id TEXT,
    run_id TEXT,
    episode_id TEXT,
    step INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_sandbox ON events(sandbox_id);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, episode_id, step);
CREATE INDEX IF NOT EXISTS events_type_time ON events(type, time);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""


class EventStore:
    """Thread-safe append-only event log in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def emit(self, event: Event) -> None:
        record = event.to_dict()
        data = {
            k: v for k, v in record.items() if k not in ("type", "time", "sandbox_id", "run_id", "episode_id", "step")
        }
        with self._lock:
            self._db.execute(
                "INSERT INTO events(type, time, sandbox_id, run_id, episode_id, step, data) VALUES (?,?,?,?,?,?,?)",
                (
                    record["type"],
                    record["time"],
                    record["sandbox_id"],
                    record["run_id"],
                    record["episode_id"],
                    record["step"],
                    json.dumps(data, default=str, ensure_ascii=False),
                ),
            )

    def query(
        self,
        *,
        sandbox_id: str | None = None,
        type: str | None = None,
        run_id: str | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Events matching all given filters, oldest first, as flat dicts."""
        clauses, params = [], []
        for column, value in (("sandbox_id", sandbox_id), ("type", type), ("run_id", run_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT type, time, sandbox_id, run_id, episode_id, step, data FROM events {where} ORDER BY id LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return list(_rows_to_dicts(rows))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _rows_to_dicts(rows: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield record_from_row(*row)


def record_from_row(
    type_: str, time: str, sandbox_id: str | None, run_id: str | None, episode_id: str | None,
    step: int | None, data: str,
) -> dict[str, Any]:  # fmt: skip
    """The flat event dict of one stored row: common columns first, then the JSON data fields
    (which never override a common field; unreadable data adds nothing)."""
    record: dict[str, Any] = {
        "type": type_, "time": time, "sandbox_id": sandbox_id, "run_id": run_id, "episode_id": episode_id,
        "step": step,
    }  # fmt: skip
    try:
        extra = json.loads(data)
    except ValueError:
        extra = {}
    if isinstance(extra, dict):
        for key, value in extra.items():
            record.setdefault(key, value)
    return record
