"""A pool of warm sandboxes, so an episode starts in milliseconds.

Released sandboxes are destroyed, never reused: a fresh sandbox guarantees that nothing
an earlier episode left behind (files, background processes, shell state) leaks into the
next one, which matters when the earlier episode was a rogue one. A background thread
keeps ``size`` sandboxes ready.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from rollcage.config import SandboxConfig
from rollcage.errors import RollcageError
from rollcage.sandbox.sandbox import Sandbox


class SandboxPool:
    def __init__(self, config: SandboxConfig | None = None, size: int = 4, **sandbox_kwargs: Any) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.config = config or SandboxConfig()
        self.size = size
        self._kwargs = sandbox_kwargs
        self._ready: queue.Queue[Sandbox] = queue.Queue()
        self._wanted = threading.Semaphore(size)
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._handed_out: set[Sandbox] = set()
        self._releasing: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._filler = threading.Thread(target=self._fill, name="rollcage-pool", daemon=True)
        self._filler.start()

    def _fill(self) -> None:
        while True:
            self._wanted.acquire()
            if self._closing.is_set():
                return
            try:
                sandbox = Sandbox(self.config, **self._kwargs)
            except BaseException as exc:  # surfaced to the next acquire()
                self._error = exc
                self._closing.set()
                return
            if self._closing.is_set():
                sandbox.close()
                return
            self._ready.put(sandbox)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until all ``size`` sandboxes are warm; raise if that takes too long."""
        deadline = time.monotonic() + timeout
        while self._ready.qsize() < self.size:
            if self._error is not None:
                raise RollcageError(f"sandbox pool cannot start sandboxes: {self._error}")
            if time.monotonic() > deadline:
                raise RollcageError(f"pool has {self._ready.qsize()} of {self.size} sandboxes after {timeout}s")
            time.sleep(0.002)
        self.wait_released(max(0.0, deadline - time.monotonic()))

    def wait_released(self, timeout: float = 60.0) -> None:
        """Block until sandboxes handed to :meth:`release` are fully torn down."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._releasing)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))

    def acquire(self, timeout: float = 60.0, *, run_id: str | None = None, episode_id: str | None = None) -> Sandbox:
        """A warm sandbox with a fresh workspace, attributed to ``run_id``/``episode_id``."""
        if self._error is not None:
            raise RollcageError(f"sandbox pool cannot start sandboxes: {self._error}")
        if self._closing.is_set():
            raise RollcageError("sandbox pool is closed")
        try:
            sandbox = self._ready.get(timeout=timeout)
        except queue.Empty:
            raise RollcageError(f"no sandbox became ready within {timeout}s") from None
        self._wanted.release()
        sandbox.attribution.run_id = run_id
        sandbox.attribution.episode_id = episode_id
        with self._lock:
            self._handed_out.add(sandbox)
        return sandbox

    def release(self, sandbox: Sandbox) -> None:
        """Return a sandbox: it is destroyed in the background; the pool makes a new one."""
        with self._lock:
            self._handed_out.discard(sandbox)
            thread = threading.Thread(target=self._destroy, args=(sandbox,), name="rollcage-release", daemon=True)
            self._releasing.add(thread)
        thread.start()

    def _destroy(self, sandbox: Sandbox) -> None:
        try:
            sandbox.close()
        finally:
            with self._lock:
                self._releasing.discard(threading.current_thread())

    def close(self) -> None:
        self._closing.set()
        self._wanted.release()
        self._filler.join(timeout=30)
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                break
        with self._lock:
            leftovers = list(self._handed_out)
            self._handed_out.clear()
        for sandbox in leftovers:
            sandbox.close()
        self.wait_released()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
