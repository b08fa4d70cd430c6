"""Start bubblewrap from one long-lived thread.

``--die-with-parent`` relies on PR_SET_PDEATHSIG, which fires when the *thread* that
forked the child exits, not the process. Sandboxes created from short-lived threads
(asyncio executors, thread pools) would die with those threads, so every spawn is
handed to a single daemon thread that lives as long as the supervisor process.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _serve() -> None:
    while True:
        job, future = _jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` run on the spawner thread."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="rollcage-spawner", daemon=True)
            _thread.start()
    future: Future[subprocess.Popen[bytes]] = Future()
    _jobs.put((lambda: subprocess.Popen(args, **kwargs), future))
    return future.result()
