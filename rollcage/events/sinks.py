"""Where events go: anything with ``emit(event)``; a JSON-lines file; a fan-out."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from rollcage.events.model import Event


@runtime_checkable
class EventSink(Protocol):
    """Receives events; must not raise for a well-formed event."""

    def emit(self, event: Event) -> None: ...


class JsonlSink:
    """Appends one JSON object per line; each line is written with a single write call
    on an ``O_APPEND`` descriptor so concurrent writers never interleave a line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        line = (event.to_json() + "\n").encode()
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class Fanout:
    """Sends each event to several sinks, in order."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
