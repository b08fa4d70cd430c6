"""The sandboxes a server holds for its clients: create, run, files, stop, list.

Each sandbox is an ordinary local :class:`~rollcage.sandbox.Sandbox` of the server's process;
its events go to the server's event store, and its alerts also wake the live stream at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rollcage.config import SandboxConfig
from rollcage.errors import RollcageError
from rollcage.events import EventSink


class SandboxNotFound(RollcageError, LookupError):
    """No sandbox with that id is held by this server."""


class TooManySandboxes(RollcageError):
    """The server's limit on open sandboxes is reached."""


class SandboxManager:
    def __init__(
        self,
        events: EventSink | None = None,
        *,
        max_sandboxes: int = 64,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        factory: Callable[..., Any] | None = None,
    ) -> None:
        self.events = events
        self.max_sandboxes = max_sandboxes
        self.on_alert = on_alert
        self._factory = factory
        self._lock = threading.Lock()
        self._sandboxes: dict[str, Any] = {}
        self._created: dict[str, float] = {}
        self._pending = 0
        self.commands_run = 0

    def create(self, config: SandboxConfig, *, run_id: str | None = None, episode_id: str | None = None) -> Any:
        with self._lock:
            if len(self._sandboxes) + self._pending >= self.max_sandboxes:
                raise TooManySandboxes(f"this server holds at most {self.max_sandboxes} sandboxes; stop one first")
            self._pending += 1
        try:
            if self._factory is not None:
                sandbox = self._factory(config, run_id=run_id, episode_id=episode_id, events=self.events)
            else:
                from rollcage.sandbox import Sandbox

                sandbox = Sandbox(config, run_id=run_id, episode_id=episode_id, events=self.events)
        finally:
            with self._lock:
                self._pending -= 1
        monitor = getattr(sandbox, "monitor", None)
        if monitor is not None and self.on_alert is not None:
            monitor.on_alert.append(self.on_alert)
        with self._lock:
            self._sandboxes[sandbox.id] = sandbox
            self._created[sandbox.id] = time.time()
        return sandbox

    def get(self, sandbox_id: str) -> Any:
        with self._lock:
            sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r} on this server")
        if sandbox.closed:  # stopped from inside (gateway lost, a rule): forget it
            self._forget(sandbox_id)
            raise SandboxNotFound(f"sandbox {sandbox_id!r} has stopped")
        return sandbox

    def created(self, sandbox_id: str) -> float:
        return self._created.get(sandbox_id, 0.0)

    def list(self) -> list[Any]:
        with self._lock:
            items = list(self._sandboxes.values())
        for sandbox in items:
            if sandbox.closed:
                self._forget(sandbox.id)
        return [s for s in items if not s.closed]

    def stop(self, sandbox_id: str) -> None:
        sandbox = self.get(sandbox_id)
        self._forget(sandbox_id)
        sandbox.close()

    def _forget(self, sandbox_id: str) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox_id, None)
            self._created.pop(sandbox_id, None)

    def close_all(self) -> None:
        with self._lock:
            items = list(self._sandboxes.values())
            self._sandboxes.clear()
            self._created.clear()
        for sandbox in items:
            try:
                sandbox.close()
            except Exception:
                continue

    def __len__(self) -> int:
        with self._lock:
            return len(self._sandboxes)
