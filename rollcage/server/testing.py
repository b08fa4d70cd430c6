"""A real server on a free local port in a background thread, for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Any

from rollcage.server.app import ServerSettings, create_app


class LiveServer:
    """``with LiveServer(settings) as srv: srv.url`` — uvicorn on 127.0.0.1, stopped on exit."""

    def __init__(self, settings: ServerSettings, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.settings = settings
        self.app: Any = create_app(settings)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=0, log_level="error",
                                                     timeout_graceful_shutdown=2))  # fmt: skip
        self._thread = threading.Thread(target=self._server.run, name="rollcage-live-server", daemon=True)
        self.url = ""

    @property
    def token(self) -> str:
        return self.settings.token

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)
