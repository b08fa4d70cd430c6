"""asyncio front end to :class:`Sandbox`.

Each blocking call runs in a worker thread; bubblewrap itself is always started from the
spawner thread (see ``spawn``), so sandboxes outlive the worker threads safely.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rollcage.config import SandboxConfig
from rollcage.sandbox.result import CommandResult
from rollcage.sandbox.sandbox import Sandbox


class AsyncSandbox:
    """``async with AsyncSandbox(config) as sb: await sb.run("ls")``."""

    def __init__(self, config: SandboxConfig | None = None, **kwargs: Any) -> None:
        self._config = config
        self._kwargs = kwargs
        self.sandbox: Sandbox | None = None

    @classmethod
    async def create(cls, config: SandboxConfig | None = None, **kwargs: Any) -> AsyncSandbox:
        self = cls(config, **kwargs)
        await self.start()
        return self

    async def start(self) -> None:
        self.sandbox = await asyncio.to_thread(Sandbox, self._config, **self._kwargs)

    @property
    def id(self) -> str:
        return self._require().id

    def _require(self) -> Sandbox:
        if self.sandbox is None:
            raise RuntimeError("AsyncSandbox not started: use `async with` or `await AsyncSandbox.create()`")
        return self.sandbox

    async def run(self, command: str, **kwargs: Any) -> CommandResult:
        return await asyncio.to_thread(self._require().run, command, **kwargs)

    async def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        await asyncio.to_thread(self._require().write_file, path, content, mode)

    async def read_file(self, path: str, max_bytes: int = 64 * 1024**2) -> str:
        return await asyncio.to_thread(self._require().read_file, path, max_bytes)

    async def read_bytes(self, path: str, max_bytes: int = 64 * 1024**2) -> bytes:
        return await asyncio.to_thread(self._require().read_bytes, path, max_bytes)

    async def close(self) -> None:
        if self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.close)

    async def __aenter__(self) -> AsyncSandbox:
        if self.sandbox is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
