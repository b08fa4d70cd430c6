"""Fast, race-tolerant reads of one process's /proc entries, for the exec and GPU sensors.

Everything here may find the process already gone (short-lived commands exit before the
sensor gets to them), so every reader returns ``None`` instead of raising. Reads use raw
``os.open``/``os.read`` because the exec sensor calls them for every exec on the host.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

MAX_HASH_BYTES = 64 * 1024 * 1024  # larger executables are not hashed (exe_sha256 = None)
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def read_proc_file(pid: int, name: str, limit: int = 65536) -> bytes | None:
    """Raw contents of /proc/<pid>/<name> (at most ``limit`` bytes), or None."""
    try:
        fd = os.open(f"/proc/{pid}/{name}", _READ_FLAGS)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def readlink(pid: int, name: str) -> str | None:
    """Target of /proc/<pid>/exe or /proc/<pid>/cwd, as seen in the process's mount namespace."""
    try:
        return os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return None


def argv(pid: int) -> list[str] | None:
    """The process's argv (empty list for kernel threads / zombies), or None if it is gone."""
    data = read_proc_file(pid, "cmdline", 1 << 20)
    if data is None:
        return None
    if not data:
        return []
    return data.rstrip(b"\0").decode("utf-8", "replace").split("\0")


def stat(pid: int) -> tuple[str, int] | None:
    """(comm, ppid) from /proc/<pid>/stat, or None."""
    data = read_proc_file(pid, "stat", 4096)
    if not data:
        return None
    close = data.rfind(b")")
    comm = data[data.find(b"(") + 1 : close].decode("utf-8", "replace")
    fields = data[close + 2 :].split(b" ", 2)
    try:
        return comm, int(fields[1])
    except (IndexError, ValueError):
        return None


def comm(pid: int) -> str | None:
    data = read_proc_file(pid, "comm", 64)
    return data.rstrip(b"\n").decode("utf-8", "replace") if data else None


def uid(pid: int) -> int | None:
    """Effective uid of the process (owner of /proc/<pid>), or None."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def cgroup_paths(pid: int) -> list[str] | None:
    """Every hierarchy's cgroup path of the process (``/rollcage/sb-…``), or None."""
    data = read_proc_file(pid, "cgroup", 8192)
    if data is None:
        return None
    return [line.split(b":", 2)[2].decode("utf-8", "replace") for line in data.splitlines() if line.count(b":") >= 2]


def in_cgroup(paths: list[str], match: str) -> bool:
    """Whether any of ``paths`` is ``match`` or below it."""
    prefix = match.rstrip("/") + "/"
    return any(p == match or p.startswith(prefix) for p in paths)


class ExeHasher:
    """sha256 of executables, opened through /proc/<pid>/exe so the file is the one the
    process runs even inside another mount namespace. Cached by (dev, inode, mtime, size);
    files over ``max_bytes`` are skipped."""

    def __init__(self, max_bytes: int = MAX_HASH_BYTES, cache_size: int = 4096) -> None:
        self.max_bytes = max_bytes
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[int, int, int, int], str | None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def sha256_of_pid(self, pid: int) -> str | None:
        return self.hash_pid(pid)[0]

    def hash_pid(self, pid: int) -> tuple[str | None, bool]:
        """(sha256 or None, whether the file could be read: False if the process is gone);
        a file over ``max_bytes`` gives (None, True)."""
        path = f"/proc/{pid}/exe"
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:
            return None, False
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                if key in self._cache:
                    self.hits += 1
                    self._cache.move_to_end(key)
                    return self._cache[key], True
            self.misses += 1
            digest = None if st.st_size > self.max_bytes else _hash_fd(fd)
            with self._lock:
                self._cache[key] = digest
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return digest, True
        except OSError:
            return None, False
        finally:
            os.close(fd)

    def __len__(self) -> int:
        return len(self._cache)


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    """sha256 of a host file (used by tests and by rules that pin known binaries)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
