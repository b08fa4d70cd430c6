"""How the gateway reaches the outside: name resolution and upstream sockets.

Pluggable so that tests and the demo point the gateway at servers they start themselves
(inside their own network namespaces) while production uses the host's network. The
gateway process runs in its own namespace, so a connector hands out sockets created in
the namespace where the upstream lives; the gateway then connects them asynchronously.
A connector is described by a small JSON-able spec because it crosses a process boundary.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rollcage.net.netns import NetnsSwitch


class Connector(Protocol):
    """Where upstream names and connections come from."""

    def resolve(self, name: str) -> list[str]:
        """IPv4/IPv6 addresses for ``name`` (empty when it does not resolve)."""
        ...

    def socket_for(self, ip: str) -> socket.socket:
        """An unconnected, non-blocking TCP socket that can reach ``ip``."""
        ...

    def close(self) -> None: ...


_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK


def _family(ip: str) -> int:
    """The address family of an address the gateway already parsed (no second parse per connect)."""
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _new_socket(ip: str, make: Callable[[int, int], socket.socket] = socket.socket) -> socket.socket:
    sock = make(_family(ip), _NONBLOCKING_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class NetnsConnector:
    """Upstreams live in a network namespace (the simulated internet); names come from a table."""

    RESERVE = 32  # sockets made per trip into the namespace

    def __init__(self, netns: str | Path, names: dict[str, str]) -> None:
        self._names = {k.rstrip(".").lower(): v for k, v in names.items()}
        self._switch = NetnsSwitch(netns)
        self._reserve: dict[tuple[int, int], list[socket.socket]] = {}

    def resolve(self, name: str) -> list[str]:
        ip = self._names.get(name.rstrip(".").lower())
        return [ip] if ip else []

    def socket_for(self, ip: str) -> socket.socket:
        return _new_socket(ip, self._take)

    def _take(self, family: int, type: int) -> socket.socket:
        """A fresh socket from the namespace, made in batches: stepping in and out costs two
        setns(2) calls, more than the socket itself."""
        reserve = self._reserve.setdefault((family, type), [])
        if not reserve:
            reserve.extend(self._switch.sockets(self.RESERVE, family, type))
        return reserve.pop()

    def close(self) -> None:
        for reserve in self._reserve.values():
            for sock in reserve:
                sock.close()
        self._reserve.clear()
        self._switch.close()


class HostConnector:
    """Upstreams are reached through the gateway process's own original network namespace.

    The gateway only ever parks listener threads in its namespace; the threads that call
    the connector stay where the process started, so plain sockets are the host's.
    """

    def resolve(self, name: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def socket_for(self, ip: str) -> socket.socket:
        return _new_socket(ip)

    def close(self) -> None:
        pass


def connector_from_spec(spec: dict[str, Any]) -> Connector:
    """Build a connector from ``{"kind": "host"}`` or ``{"kind": "netns", "netns": PATH, "names": {...}}``."""
    kind = spec.get("kind")
    if kind == "host":
        return HostConnector()
    if kind == "netns":
        return NetnsConnector(spec["netns"], dict(spec.get("names", {})))
    raise ValueError(f"unknown connector kind {kind!r}: use 'host' or 'netns'")
