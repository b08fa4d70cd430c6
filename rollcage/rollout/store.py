"""The trajectory store of a rollout run: one directory per run.

Layout of ``<store_dir>/<run_id>/``::

    trajectories.jsonl   one JSON object per finished episode (see :class:`EpisodeRecord`),
                         appended and fsynced when the episode ends
    index.db             SQLite (WAL): table ``episodes`` indexing the JSON lines, table ``run``
    run.json             the run's parameters (tasks, episodes, policy, ...), written at start

``episodes(run_id, episode_id, task, status, reward, success, n_steps, n_alerts,
alerts_by_category, started, finished, duration_s, offset, length)``: ``status`` is ``running``
while an episode is under way (an interrupted run leaves it so, and a resumed run reruns it),
else the episode's final status (``submitted``, ``max_steps``, ``critical_alert``, ``error``, ...);
``offset``/``length`` locate its line in ``trajectories.jsonl`` (bytes). ``alerts_by_category`` is
a JSON object ``{category: count}``; ``started``/``finished`` are Unix times.

:class:`RunStore` is the read (and write) API; the admin server reads runs through it::

    store = RunStore.open("runs/run-20250101-120000-ab12")
    for row in store.episodes(): ...            # index rows (dicts), no trajectories loaded
    store.trajectory("ep00003-csv-sum")          # the whole episode record (dict)
    store.summary()                              # success rate, mean reward, alerts by category
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TRAJECTORIES = "trajectories.jsonl"
INDEX = "index.db"
RUN_META = "run.json"
RUNNING = "running"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    run_id TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    reward REAL,
    success INTEGER,
    n_steps INTEGER,
    n_alerts INTEGER,
    alerts_by_category TEXT,
    started REAL,
    finished REAL,
    duration_s REAL,
    "offset" INTEGER,
    length INTEGER,
    PRIMARY KEY (run_id, episode_id)
);
CREATE INDEX IF NOT EXISTS episodes_task ON episodes(task);
CREATE INDEX IF NOT EXISTS episodes_status ON episodes(status);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
"""

_COLUMNS = ("run_id", "episode_id", "task", "status", "reward", "success", "n_steps", "n_alerts",
            "alerts_by_category", "started", "finished", "duration_s", "offset", "length")  # fmt: skip


class StoreError(RuntimeError):
    """A run directory that is missing or damaged, or an episode id that is not in it."""


def alerts_by_category(alerts: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(str(a.get("category") or "unknown") for a in alerts).items()))


class RunStore:
    """One run's trajectories (JSON lines) and their SQLite index. Thread safe.

    ``RunStore(path, run_id)`` creates the directory if needed (writers);
    ``RunStore.open(path)`` opens an existing run (readers) and fails if it is not one.
    """

    def __init__(self, path: str | os.PathLike[str], run_id: str | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path / INDEX, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            stored = self._db.execute("SELECT value FROM run WHERE key='run_id'").fetchone()
            if run_id is None:
                run_id = stored["value"] if stored else self.path.name
            elif stored and stored["value"] != run_id:
                raise StoreError(f"{self.path} holds run {stored['value']!r}, not {run_id!r}")
            self._db.execute("INSERT OR IGNORE INTO run(key, value) VALUES ('run_id', ?)", (run_id,))
            self._db.commit()
        self.run_id: str = run_id

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunStore:
        """Open an existing run directory (one holding ``index.db``)."""
        path = Path(path)
        if not (path / INDEX).is_file():
            raise StoreError(f"{path} is not a rollout run directory (no {INDEX})")
        return cls(path)

    @staticmethod
    def list_runs(store_dir: str | os.PathLike[str]) -> list[Path]:
        """The run directories under ``store_dir``, oldest first."""
        root = Path(store_dir)
        if not root.is_dir():
            return []
        runs = [p for p in root.iterdir() if (p / INDEX).is_file()]
        return sorted(runs, key=lambda p: (p / INDEX).stat().st_mtime)

    # -- writing -----------------------------------------------------------------------

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Record the run's parameters (kept in ``run.json``; the first call wins on resume
        except for ``resumed``, a list of resume times)."""
        file = self.path / RUN_META
        if file.is_file():
            old = json.loads(file.read_text())
            old.setdefault("resumed", []).append(time.time())
            meta = old
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, file)

    def mark_running(self, episode_id: str, task: str, started: float | None = None) -> None:
        """Index an episode as under way (replacing an interrupted attempt's row)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO episodes(run_id, episode_id, task, status, started) VALUES (?,?,?,?,?)",
                (self.run_id, episode_id, task, RUNNING, started or time.time()),
            )
            self._db.commit()

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one finished episode: the JSON line is written and fsynced, then indexed.
        Returns the index row."""
        alerts = record.get("alerts") or []
        line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode()
        with self._lock:
            fd = os.open(self.path / TRAJECTORIES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                offset = os.lseek(fd, 0, os.SEEK_END)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            row = {
                "run_id": self.run_id,
                "episode_id": record["episode_id"],
                "task": record["task"],
                "status": record.get("status") or "unknown",
                "reward": record.get("reward"),
                "success": int(bool(record.get("success"))),
                "n_steps": len(record.get("steps") or []),
                "n_alerts": len(alerts),
                "alerts_by_category": json.dumps(alerts_by_category(alerts)),
                "started": record.get("started"),
                "finished": record.get("finished"),
                "duration_s": record.get("duration_s"),
                "offset": offset,
                "length": len(line),
            }
            self._db.execute(
                f"INSERT OR REPLACE INTO episodes({', '.join(_quote(c) for c in _COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                tuple(row[c] for c in _COLUMNS),
            )
            self._db.commit()
        return _row_out(row)

    # -- reading -----------------------------------------------------------------------

    def episodes(self, *, status: str | None = None, task: str | None = None) -> list[dict[str, Any]]:
        """Index rows, oldest first; ``alerts_by_category`` decoded, ``success`` a bool."""
        query, args = "SELECT * FROM episodes WHERE run_id = ?", [self.run_id]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        if task is not None:
            query, args = query + " AND task = ?", [*args, task]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY started, episode_id", args).fetchall()
        return [_row_out(dict(r)) for r in rows]

    def finished_ids(self) -> set[str]:
        """Episodes that have their trajectory (a resumed run skips these)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT episode_id FROM episodes WHERE run_id = ? AND status != ?", (self.run_id, RUNNING)
            ).fetchall()
        return {r["episode_id"] for r in rows}

    def trajectory(self, episode_id: str) -> dict[str, Any]:
        """The full record of one finished episode (steps, alerts, reward, ...)."""
        with self._lock:
            row = self._db.execute(
                'SELECT "offset", length, status FROM episodes WHERE run_id = ? AND episode_id = ?',
                (self.run_id, episode_id),
            ).fetchone()
        if row is None:
            raise StoreError(f"run {self.run_id!r} has no episode {episode_id!r}")
        if row["offset"] is None:
            raise StoreError(f"episode {episode_id!r} of run {self.run_id!r} has no trajectory ({row['status']})")
        with open(self.path / TRAJECTORIES, "rb") as f:
            f.seek(row["offset"])
            data = f.read(row["length"])
        return json.loads(data)

    def trajectories(self) -> Iterator[dict[str, Any]]:
        """Every indexed trajectory, in index order (lines of interrupted attempts are skipped)."""
        for row in self.episodes():
            if row["offset"] is not None:
                yield self.trajectory(row["episode_id"])

    def meta(self) -> dict[str, Any]:
        file = self.path / RUN_META
        return json.loads(file.read_text()) if file.is_file() else {}

    def summary(self) -> dict[str, Any]:
        """Aggregates over the finished episodes: counts, success rate, mean reward, steps,
        alerts by category, and per task."""
        rows = [r for r in self.episodes() if r["status"] != RUNNING]
        return {"run_id": self.run_id, **aggregate(rows), "running": len(self.episodes(status=RUNNING))}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, run_id={self.run_id!r})"


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate, mean reward, steps, statuses and alerts by category over index rows."""
    n = len(rows)
    by_category: Counter[str] = Counter()
    for r in rows:
        by_category.update(r.get("alerts_by_category") or {})
    per_task: dict[str, dict[str, Any]] = {}
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        per_task[task] = {
            "episodes": len(mine),
            "success_rate": sum(r["success"] for r in mine) / len(mine),
            "mean_reward": _mean([r["reward"] for r in mine]),
            "alerts": sum(r["n_alerts"] or 0 for r in mine),
        }
    return {
        "episodes": n,
        "succeeded": sum(1 for r in rows if r["success"]),
        "success_rate": (sum(1 for r in rows if r["success"]) / n) if n else 0.0,
        "mean_reward": _mean([r["reward"] for r in rows]),
        "steps": sum(r["n_steps"] or 0 for r in rows),
        "alerts": sum(r["n_alerts"] or 0 for r in rows),
        "alerts_by_category": dict(sorted(by_category.items())),
        "statuses": dict(sorted(Counter(r["status"] for r in rows).items())),
        "per_task": per_task,
    }


def _mean(values: list[Any]) -> float:
    nums = [float(v) for v in values if v is not None]
    return sum(nums) / len(nums) if nums else 0.0


def _quote(column: str) -> str:
    return f'"{column}"' if column == "offset" else column


def _row_out(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    raw = out.get("alerts_by_category")
    out["alerts_by_category"] = json.loads(raw) if isinstance(raw, str) and raw else {}
    out["success"] = bool(out.get("success"))
    return out


__all__ = ["INDEX", "RUNNING", "RUN_META", "TRAJECTORIES", "RunStore", "StoreError", "aggregate", "alerts_by_category"]
