"""Events: what a sandbox records, with attribution, in SQLite and JSON lines."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from rollcage import Sandbox, SandboxConfig
from rollcage.events import EventStore, Fanout, JsonlSink

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMMON = ("type", "time", "sandbox_id", "run_id", "episode_id", "step")


def test_sandbox_and_command_events_carry_attribution(store: EventStore, tmp_path) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl")
    with Sandbox(SandboxConfig(memory="256m"), run_id="run-7", episode_id="ep-3", events=Fanout(store, sink)) as sb:
        sb.run("echo one", step=1)
        sb.run("exit 4", step=2)
        sb.run("sleep 5", step=3, timeout=0.2)
    sink.close()
    everything = store.query(sandbox_id=sb.id)
    events = [e for e in everything if e["type"] in ("sandbox", "command_finished")]
    assert [e["type"] for e in events] == [
        "sandbox",
        "command_finished",
        "command_finished",
        "command_finished",
        "sandbox",
    ]
    created, one, four, slow, stopped = events
    analysed = [(e["command"], e["step"]) for e in everything if e["type"] == "command"]
    assert analysed == [("echo one", 1), ("exit 4", 2), ("sleep 5", 3)]  # the monitor saw each before it ran
    assert any(e["type"] == "exec" and e["step"] == 3 and e["name"] == "sleep" for e in everything)
    assert created["action"] == "created" and created["config"]["memory"] == 256 * 1024**2
    assert stopped["action"] == "stopped"
    assert (one["command"], one["exit_code"], one["step"]) == ("echo one", 0, 1)
    assert (four["exit_code"], four["step"]) == (4, 2)
    assert slow["timed_out"] is True and slow["exit_code"] == 124
    for event in everything:
        assert all(key in event for key in COMMON)
        assert RFC3339_UTC.match(event["time"])
        assert (event["sandbox_id"], event["run_id"], event["episode_id"]) == (sb.id, "run-7", "ep-3")
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines == everything  # the same events, in the same order, in both sinks


def test_store_is_append_only(store: EventStore) -> None:
    with Sandbox(SandboxConfig(mode="off"), events=store) as sb:
        sb.run("true")
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET type = 'forged'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(store.query(sandbox_id=sb.id)) == 3


def test_events_survive_a_crash_of_the_writer(tmp_path) -> None:
    import subprocess
    import sys

    db = tmp_path / "crash.db"
    code = (
        "import os; from rollcage.events import EventStore, Event, Attribution\n"
        f"s = EventStore({str(db)!r})\n"
        "for i in range(100): s.emit(Event('command', 'sb-x', Attribution(step=i), {'i': i}))\n"
        "os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    events = EventStore(db).query(sandbox_id="sb-x")
    assert [e["step"] for e in events] == list(range(100))
