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
from dataclasses import dataclass, field
from pathlib import Path

from rollcage.sandbox.procs import parent_pid, start_ticks


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


def holders_of_inode(inode: int, pids: list[int]) -> list[int]:
    """Every pid with ``socket:[inode]`` among its open files (children inherit sockets)."""
    target = f"socket:[{inode}]"
    found = []
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}") == target:
                        found.append(pid)
                        break
    return found


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


def find_owner(init_pid: int, pids_file: str, protocol: str, ip: str, port: int) -> SocketOwner | None:
    """The process of the sandbox (pids listed in ``pids_file``) that owns ``ip:port``."""
    inode = socket_inode(init_pid, protocol, ip, port)
    if inode is None:
        return None
    try:
        pids = [int(p) for p in Path(pids_file).read_text().split()]
    except (OSError, ValueError):
        return None
    holders = holders_of_inode(inode, pids)
    if not holders:
        return None
    # The oldest holder opened it; the others inherited it (``exec 3<>/dev/tcp/...; cat <&3``).
    pid = min(holders, key=lambda p: (start_ticks(p) or 0, p))
    return SocketOwner(pid, cmdline_of(pid), ancestors_of(pid, init_pid))
