"""A sandbox on a rollcage server, driven through its REST API with the local SDK's methods.

``RemoteSandbox(config, server="http://host:8080", token="...")`` behaves like ``Sandbox(config)``:
``run`` returns a :class:`~rollcage.CommandResult`, files are written and read with the same
calls, and errors arrive as the same exception types (``SandboxFileError``, ``SessionError``,
``SandboxClosedError``, ``ConfigError`` ...). The token defaults to ``$ROLLCAGE_TOKEN``.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import httpx

from rollcage.config import SandboxConfig
from rollcage.errors import (
    ConfigError,
    HostError,
    RollcageError,
    SandboxClosedError,
    SandboxFileError,
    SessionError,
)
from rollcage.events import Attribution
from rollcage.sandbox.result import CommandResult

DEFAULT_SESSION = "default"
_SERVER_SIDE = ("rootfs", "rules")  # chosen by the server's operator, not by clients


class ServerError(RollcageError):
    """The server answered with an error that maps to no more specific rollcage error."""

    def __init__(self, status: int, detail: str, kind: str = "") -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status, self.detail, self.kind = status, detail, kind


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        detail, kind = str(body.get("detail", response.text)), str(body.get("error", ""))
    except ValueError:
        detail, kind = response.text or response.reason_phrase, ""
    status = response.status_code
    if kind == "invalid_config":
        raise ConfigError(detail)
    if kind == "session_error":
        raise SessionError(detail)
    if kind in ("sandbox_closed",) or (kind == "not_found" and "sandbox" in detail):
        raise SandboxClosedError(detail)
    if kind == "file_not_found":
        raise SandboxFileError(errno.ENOENT, detail)
    if kind in ("file_too_large", "too_large"):
        raise SandboxFileError(errno.EFBIG, detail)
    if kind == "file_error":
        raise SandboxFileError(errno.EIO, detail)
    if kind == "host_error":
        raise HostError(detail)
    if kind == "validation_error":
        raise ValueError(detail)
    raise ServerError(status, detail, kind)


class RemoteSandbox:
    """A sandbox held by a rollcage server; same methods as :class:`rollcage.Sandbox`."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        server: str,
        token: str | None = None,
        run_id: str | None = None,
        episode_id: str | None = None,
        http_timeout: float = 30.0,
        **unsupported: Any,
    ) -> None:
        unsupported = {k: v for k, v in unsupported.items() if v is not None}
        if unsupported:
            raise TypeError(f"a remote sandbox does not take {', '.join(sorted(unsupported))} (server-side)")
        self.config = config or SandboxConfig()
        for name in _SERVER_SIDE:
            if getattr(self.config, name) != SandboxConfig.model_fields[name].default:
                raise ConfigError(f"{name} is chosen by the server's operator; leave it unset for a remote sandbox")
        token = token if token is not None else os.environ.get("ROLLCAGE_TOKEN")
        if not token:
            raise ConfigError("a remote sandbox needs token=... (or $ROLLCAGE_TOKEN): the server's bearer token")
        self.server = server.rstrip("/")
        self._http_timeout = http_timeout
        self._http = httpx.Client(
            base_url=self.server, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(http_timeout)
        )
        self._closed = False
        spec = self.config.model_dump(mode="json", exclude={"rootfs", "rules"})
        if self.config.network is not None:
            spec["network"] = list(self.config.network.allow)
        else:
            spec.pop("network", None)
        try:
            info = self._call(
                "POST", "/v1/sandboxes", json={"config": spec, "run_id": run_id, "episode_id": episode_id}
            ).json()
        except BaseException:
            self._http.close()
            raise
        self.id: str = info["id"]
        self.attribution = Attribution(run_id=run_id, episode_id=episode_id)

    def _call(self, method: str, url: str, *, timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, timeout=timeout or self._http_timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise HostError(f"cannot reach rollcage server {self.server}: {exc}") from None
        _raise_for(response)
        return response

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxClosedError(f"sandbox {self.id} is closed")

    # -- the Sandbox API ---------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        session: str = DEFAULT_SESSION,
        step: int | None = None,
        on_output: Any = None,
    ) -> CommandResult:
        """Run a command in a session of the remote sandbox. ``on_output`` gets the whole output once
        the command has finished (no streaming over the API)."""
        if not isinstance(command, str):
            raise TypeError("command must be a string")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self._check_open()
        if step is not None:
            self.attribution.step = step
        body: dict[str, Any] = {
            "command": command,
            "session": session,
            "timeout": timeout,
            "step": self.attribution.step,
        }
        wait = (timeout or self.config.timeout) + self._http_timeout
        data = self._call("POST", f"/v1/sandboxes/{self.id}/commands", json=body, timeout=wait).json()
        result = CommandResult(
            exit_code=data["exit_code"],
            output=data["output"],
            truncated=data["truncated"],
            duration_s=data["duration_s"],
            timed_out=data["timed_out"],
            output_bytes=data["output_bytes"],
            session=data["session"],
            session_restarted=data["session_restarted"],
            blocked=data["blocked"],
        )
        if on_output is not None and result.output:
            on_output(result.output)
        return result

    def set_step(self, step: int | None) -> None:
        self.attribution.step = step

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        data = content.encode() if isinstance(content, str) else bytes(content)
        self._check_open()
        self._call(
            "PUT",
            f"/v1/sandboxes/{self.id}/files",
            params={"path": path, "mode": mode},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def read_bytes(self, path: str, max_bytes: int = 64 * 1024**2) -> bytes:
        self._check_open()
        return self._call(
            "GET", f"/v1/sandboxes/{self.id}/files", params={"path": path, "max_bytes": max_bytes}
        ).content

    def read_file(self, path: str, max_bytes: int = 64 * 1024**2) -> str:
        return self.read_bytes(path, max_bytes).decode("utf-8", "replace")

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Alerts raised in this sandbox so far (each with the store's ``id``)."""
        if self._closed:
            return []
        return list(self._call("GET", f"/v1/sandboxes/{self.id}/alerts").json())

    @property
    def frozen(self) -> bool:
        return self._info().get("state") == "frozen"

    def _info(self) -> dict[str, Any]:
        self._check_open()
        return dict(self._call("GET", f"/v1/sandboxes/{self.id}").json())

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the sandbox on the server (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call("DELETE", f"/v1/sandboxes/{self.id}")
        except SandboxClosedError:
            pass  # already gone on the server
        finally:
            self._http.close()

    def __enter__(self) -> RemoteSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteSandbox {getattr(self, 'id', '?')} on {self.server} {'closed' if self._closed else 'running'}>"
