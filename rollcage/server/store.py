"""Read side of the event store for the API: alerts and sensor events with filters, by row id.

The server opens the SQLite file (WAL mode: readers never block the writers in sandboxes or
rollout workers) with its own connection; the row id is the cursor of the live stream.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollcage.events.store import EventStore, record_from_row

_COLUMNS = "id, type, time, sandbox_id, run_id, episode_id, step, data"


def store_time(value: datetime) -> str:
    """A datetime in the store's own RFC 3339 spelling, so string order is time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AlertFilter:
    run_id: str | None = None
    sandbox_id: str | None = None
    episode_id: str | None = None
    category: Sequence[str] = ()
    severity: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None

    def sql(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("run_id", self.run_id),
            ("sandbox_id", self.sandbox_id),
            ("episode_id", self.episode_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for key, values in (("category", self.category), ("severity", self.severity)):
            if values:
                clauses.append(f"json_extract(data, '$.{key}') IN ({','.join('?' * len(values))})")
                params.extend(values)
        if self.since is not None:
            clauses.append("time >= ?")
            params.append(store_time(self.since))
        if self.until is not None:
            clauses.append("time <= ?")
            params.append(store_time(self.until))
        return clauses, params


class EventReader:
    """Queries over the event store; one connection, serialised by a lock (queries are short)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        EventStore(self.path).close()  # create the file and schema if nobody has yet
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA query_only=ON")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, where: list[str], params: list[Any], *, order: str = "id", limit: int = 1000) -> list[dict]:
        sql = (
            f"SELECT {_COLUMNS} FROM events {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {order} LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [_row(r) for r in rows]

    def alerts(self, flt: AlertFilter, *, after_id: int = 0, limit: int = 1000, newest: bool = False) -> list[dict]:
        """Alerts matching ``flt`` with row id above ``after_id``, oldest first (or the newest ``limit``)."""
        where, params = flt.sql()
        where = ["type = 'alert'", "id > ?", *where]
        found = self._select(where, [after_id, *params], order="id DESC" if newest else "id", limit=limit)
        return found[::-1] if newest else found

    def events(
        self,
        types: Sequence[str],
        *,
        sandbox_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict]:
        """The newest ``limit`` events of ``types`` (oldest first)."""
        where = [f"type IN ({','.join('?' * len(types))})", "id > ?"]
        params: list[Any] = [*types, after_id]
        if sandbox_id is not None:
            where.append("sandbox_id = ?")
            params.append(sandbox_id)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if since is not None:
            where.append("time >= ?")
            params.append(store_time(since))
        return self._select(where, params, order="id DESC", limit=limit)[::-1]

    def alert_counts(self, run_id: str | None = None) -> dict[str, dict[str, int]]:
        """``{category: {severity: count}}`` over all alerts (of one run)."""
        sql = (
            "SELECT json_extract(data, '$.category'), json_extract(data, '$.severity'), count(*) FROM events "
            "WHERE type = 'alert'" + (" AND run_id = ?" if run_id is not None else "") + " GROUP BY 1, 2"
        )
        with self._lock:
            rows = self._db.execute(sql, (run_id,) if run_id is not None else ()).fetchall()
        out: dict[str, dict[str, int]] = {}
        for category, severity, count in rows:
            out.setdefault(str(category), {})[str(severity)] = count
        return out

    def run_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT run_id FROM events WHERE run_id IS NOT NULL").fetchall()
        return sorted(r[0] for r in rows)

    def run_span(self, run_id: str) -> tuple[str | None, str | None]:
        with self._lock:
            row = self._db.execute("SELECT min(time), max(time) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return row[0], row[1]

    def episode_ids(self, run_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT episode_id FROM events WHERE run_id = ? AND episode_id IS NOT NULL", (run_id,)
            ).fetchall()
        return sorted(r[0] for r in rows)

    def resource_sandboxes(self, limit: int = 200) -> list[dict[str, Any]]:
        """Sandboxes with resource or GPU samples, most recently sampled first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sandbox_id, max(id), max(time), count(*) FROM events WHERE type IN ('resource', 'gpu') "
                "AND sandbox_id IS NOT NULL GROUP BY sandbox_id ORDER BY 2 DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [{"sandbox_id": r[0], "last_time": r[2], "samples": r[3]} for r in rows]

    def last_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], **record_from_row(*row[1:])}


def episode_spans(reader: EventReader, run_id: str) -> dict[str, tuple[str, str]]:
    """First and last event time of each episode of a run (lanes for runs without trajectories)."""
    with reader._lock:
        rows = reader._db.execute(
            "SELECT episode_id, min(time), max(time) FROM events WHERE run_id = ? AND episode_id IS NOT NULL "
            "GROUP BY episode_id",
            (run_id,),
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}
