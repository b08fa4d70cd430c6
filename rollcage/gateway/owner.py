"""Which process in a sandbox owns a socket, found from the kernel's socket tables.

The gateway sees a connection's source address; the sandbox's network namespace lists
that socket with its inode in ``/proc/<pid>/net/{tcp,udp}``, and the process holding
``socket:[inode]`` among the sandbox's pids owns it. Looked up while the connection is
being inspected, so even a client that exits right after sending is usually found.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rollcage.gateway.sockdiag import SockDiag
from rollcage.sandbox.procs import parent_pid


@dataclass(frozen=True)
class SocketOwner:
    pid: int
    cmdline: str
    ancestors: list[int] = field(default_factory=list)  # parent first, up to the sandbox's init


def _hex_endpoint(ip: str, port: int) -> str:
    """The ``/proc/net/tcp`` spelling of an IPv4 endpoint: little-endian address, big-endian port."""
    packed = ipaddress.IPv4Address(ip).packed
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def socket_inode(init_pid: int, protocol: str, ip: str, port: int) -> int | None:
    """Inode of the sandbox socket bound to ``ip:port`` (``protocol`` is ``tcp`` or ``udp``)."""
    wanted = _hex_endpoint(ip, port)
    wildcard = _hex_endpoint("0.0.0.0", port)
    fallback = None
    try:
        with open(f"/proc/{init_pid}/net/{protocol}") as table:
            next(table, None)
            for line in table:
                parts = line.split()
                if len(parts) < 10:
                    continue
                if parts[1] == wanted and parts[9] != "0":
                    return int(parts[9])
                if parts[1] == wildcard and parts[9] != "0":
                    fallback = int(parts[9])  # an unconnected UDP socket sends from 0.0.0.0
    except OSError:
        return None
    return fallback


def holding_fd(pid: int, target: str, first: Iterable[str] = ()) -> str | None:
    """The fd number under which ``pid`` holds ``target`` (``socket:[inode]``), or None.

    The fds in ``first`` are tried before the directory is listed: a process that connects in
    a loop gets the same few fd numbers back, so one readlink usually settles it.
    """
    fd_dir = f"/proc/{pid}/fd"
    tried = set()
    for fd in first:
        tried.add(fd)
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") == target:
                return fd
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            if fd in tried:
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return fd
    return None


def _climb(pid: int, fd: str, target: str, init_pid: int) -> tuple[int, str]:
    """From a holder of ``target`` (under ``fd``) up through the ancestors that hold it too: the
    process that opened a socket, not the child that inherited it."""
    while True:
        parent = parent_pid(pid)
        if parent is None or parent <= 1 or parent == init_pid:
            return pid, fd
        parent_fd = holding_fd(parent, target)
        if parent_fd is None:
            return pid, fd
        pid, fd = parent, parent_fd


@dataclass
class OwnerHint:
    """The last owner found in one sandbox and the fd numbers its sockets had.

    A client that loops over connections owns the next one too, under one of the same fds.
    Such a hit skips the parent walk: the process already existed when this socket was
    connected, so it cannot have inherited it by fork (only by fd passing, or after its pid
    was reused by a fresh child, which this misses).
    """

    pid: int | None = None
    fds: list[str] = field(default_factory=list)

    def remember(self, pid: int, fd: str | None) -> None:
        if pid != self.pid:
            self.pid, self.fds = pid, []
        if fd is not None and (not self.fds or self.fds[0] != fd):
            if fd in self.fds:
                self.fds.remove(fd)
            self.fds.insert(0, fd)  # most recent first
            del self.fds[4:]


def cmdline_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")[:4096]


def ancestors_of(pid: int, stop: int, limit: int = 64) -> list[int]:
    chain = []
    current = pid
    for _ in range(limit):
        parent = parent_pid(current)
        if parent is None or parent <= 1:
            break
        chain.append(parent)
        if parent == stop:
            break
        current = parent
    return chain


def find_owner(
    init_pid: int,
    pids_file: str,
    protocol: str,
    ip: str,
    port: int,
    dst: tuple[str, int] | None = None,
    diag: SockDiag | None = None,
    hint: OwnerHint | None = None,
) -> SocketOwner | None:
    """The process of the sandbox (pids listed in ``pids_file``) that owns ``ip:port``.

    With ``diag`` (a sock_diag socket in the sandbox's namespace) and the destination, the
    socket is found by exact lookup; otherwise by reading the namespace's socket table.
    ``hint`` (updated here) makes a repeat owner cost a sock_diag query and a readlink.
    """
    if diag is not None and dst is not None and protocol == "tcp":
        inode = diag.inode(socket.IPPROTO_TCP, (ip, port), dst)
    else:
        inode = socket_inode(init_pid, protocol, ip, port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    if hint is not None and hint.pid is not None:
        fd = holding_fd(hint.pid, target, hint.fds)
        if fd is not None:
            hint.remember(hint.pid, fd)
            return _describe(hint.pid, init_pid)
    try:
        with open(pids_file, "rb") as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return None
    tried = hint.pid if hint is not None else None
    for candidate in sorted(pids, reverse=True):  # the newest first
        fd = holding_fd(candidate, target) if candidate != tried else None
        if fd is not None:
            break
    else:
        return None
    pid, fd = _climb(candidate, fd, target, init_pid)  # ``exec 3<>/dev/tcp/..; cat <&3``: the shell, not cat
    if hint is not None:
        hint.remember(pid, fd)
    return _describe(pid, init_pid)


_described: dict[int, tuple[float, SocketOwner]] = {}
_DESCRIBE_TTL_S = 1.0


def _describe(pid: int, init_pid: int) -> SocketOwner:
    """Command line and ancestry of ``pid``, cached for a second: a client that opens many
    connections (a scanner, a load generator) is looked up once, not per connection."""
    now = time.monotonic()
    cached = _described.get(pid)
    if cached is not None and now - cached[0] < _DESCRIBE_TTL_S:
        return cached[1]
    owner = SocketOwner(pid, cmdline_of(pid), ancestors_of(pid, init_pid))
    if len(_described) > 4096:
        _described.clear()
    _described[pid] = (now, owner)
    return owner
