"""What the server needs to know about rollouts, behind one small interface.

:class:`RunSource` is all the API and the dashboard use: runs, their episodes, and one
episode's trajectory. :class:`DirRunSource` reads run directories (one per run under
``runs_dir``, each with ``trajectories.jsonl``: one JSON object per finished episode, and an
optional ``run.json``); when ``rollcage.rollout`` provides a ``RunStore`` for a directory,
its ``episodes()``/``trajectory()``/``summary()`` are used instead (see :func:`open_run`): run
directories that ``rollcage.rollout`` writes have an ``index.db`` beside ``trajectories.jsonl``.

Episode record (JSON lines; every field but ``episode_id`` optional)::

    {"episode_id": "ep-1", "task": "...", "started": "<RFC 3339>", "ended": "<RFC 3339>",
     "reward": 1.0, "success": true, "terminated_by": "done",
     "steps": [{"step": 0, "time": "...", "message": "model text", "tool_call": {"name": "bash",
                "arguments": {"command": "ls"}}, "observation": "...", "reward": 0.0}]}
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
TRAJECTORIES = "trajectories.jsonl"


def safe_id(value: str) -> bool:
    """Run and episode ids become path names: no separators, no dot-dot."""
    return bool(_SAFE_ID.match(value)) and ".." not in value


class RunView(Protocol):
    """One run, as the server reads it."""

    run_id: str

    def meta(self) -> dict[str, Any]: ...

    def episodes(self) -> list[dict[str, Any]]:
        """Episode summaries (no steps): episode_id, task, started, ended, reward, success, steps count."""
        ...

    def trajectory(self, episode_id: str) -> dict[str, Any] | None:
        """The episode with its ``steps``, or None when unknown."""
        ...


class RunSource(Protocol):
    def run_ids(self) -> list[str]: ...

    def open(self, run_id: str) -> RunView | None: ...


def _episode_summary(record: dict[str, Any]) -> dict[str, Any]:
    steps = record.get("steps")
    out = {k: v for k, v in record.items() if k != "steps"}
    out.setdefault("steps", len(steps) if isinstance(steps, list) else record.get("num_steps", 0))
    if isinstance(steps, list):
        out["steps"] = len(steps)
    if steps and isinstance(steps, list) and isinstance(steps[0], dict):
        out.setdefault("started", steps[0].get("time"))
        out.setdefault("ended", steps[-1].get("time"))
    return out


class DirRun:
    """A run directory with ``trajectories.jsonl`` (and optionally ``run.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = path.name

    def meta(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.path / "run.json").read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    def _records(self) -> Iterator[dict[str, Any]]:
        try:
            lines = (self.path / TRAJECTORIES).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("episode_id"), str):
                    yield record

    def episodes(self) -> list[dict[str, Any]]:
        return [_episode_summary(r) for r in self._records()]

    def trajectory(self, episode_id: str) -> dict[str, Any] | None:
        found = None
        for record in self._records():
            if record["episode_id"] == episode_id:
                found = record  # the last record of an episode wins (a retried write)
        if found is not None:
            found = {**found, "steps": [_normal_step(s) for s in found.get("steps") or [] if isinstance(s, dict)]}
        return found


def _rfc3339(value: Any) -> Any:
    """Unix times (RunStore) as the RFC 3339 strings events use; strings pass through."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _normal_step(step: dict[str, Any]) -> dict[str, Any]:
    """RunStore steps (``index``, ``action``, ``started``) in the shape the API serves."""
    out = dict(step)
    if "step" not in out and isinstance(out.get("index"), int):
        out["step"] = out["index"]
    if "tool_call" not in out and "action" in out:
        out["tool_call"] = out["action"]
    if "time" not in out and "started" in out:
        out["time"] = _rfc3339(out["started"])
    return out


class RunStoreView:
    """Adapter over ``rollcage.rollout.RunStore`` (``episodes()``, ``trajectory(id)``, ``summary()``, ``meta()``)."""

    def __init__(self, run_id: str, store: Any) -> None:
        self.run_id = run_id
        self.store = store

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            meta.update(self.store.meta())
        with contextlib.suppress(Exception):
            meta["summary"] = self.store.summary()
        return meta

    def episodes(self) -> list[dict[str, Any]]:
        out = []
        for row in self.store.episodes():
            episode = {k: v for k, v in row.items() if k not in ("offset", "length")}
            episode["started"] = _rfc3339(row.get("started"))
            episode["ended"] = _rfc3339(row.get("finished"))
            episode["steps"] = row.get("n_steps")
            episode["terminated_by"] = row.get("status")
            if row.get("status") == "running":
                episode["success"] = None
            out.append(episode)
        return out

    def trajectory(self, episode_id: str) -> dict[str, Any] | None:
        try:
            record = self.store.trajectory(episode_id)
        except Exception:  # StoreError: unknown or unfinished episode
            return None
        record = dict(record)
        record["steps"] = [_normal_step(s) for s in record.get("steps") or [] if isinstance(s, dict)]
        record["started"] = _rfc3339(record.get("started"))
        record["ended"] = _rfc3339(record.get("finished"))
        record.setdefault("terminated_by", record.get("status"))
        return record


def open_run(path: Path) -> RunView:
    """A run directory through ``rollcage.rollout.RunStore`` when it is one (has ``index.db``), else read
    ``trajectories.jsonl`` directly. Never creates anything."""
    if (path / "index.db").is_file():
        try:
            from rollcage.rollout.store import RunStore

            return RunStoreView(path.name, RunStore.open(path))
        except Exception:
            pass
    return DirRun(path)


class DirRunSource:
    """Every run directory under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._views: dict[str, RunView] = {}

    def run_ids(self) -> list[str]:
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        return sorted(p.name for p in entries if p.is_dir() and safe_id(p.name))

    def open(self, run_id: str) -> RunView | None:
        if not safe_id(run_id):
            return None
        path = self.root / run_id
        if not path.is_dir():
            return None
        view = self._views.get(run_id)
        if view is None or (isinstance(view, DirRun) and (path / "index.db").is_file()):
            view = self._views[run_id] = open_run(path)  # a RunStore keeps its index open: one per run
        return view
