"""The process-wide default event sink: the SQLite store in the state directory."""

from __future__ import annotations

import threading

from rollcage.events.store import EventStore

_store: EventStore | None = None
_lock = threading.Lock()


def default_store() -> EventStore:
    global _store
    with _lock:
        if _store is None:
            from rollcage.sandbox.paths import default_event_db

            _store = EventStore(default_event_db())
        return _store


def default_sink() -> EventStore:
    return default_store()
