"""File access into a running sandbox from the host, with the sandbox's own rights.

Paths are resolved with ``openat2(RESOLVE_IN_ROOT)`` against the sandbox's root (through
``/proc/<pid>/root``), so an agent's symlink such as ``/work/x -> /etc/shadow`` resolves
inside the sandbox, never on the host. Opens run with the thread's fsuid switched to the
sandbox uid, so the SDK can read or write exactly what the agent could and no more, and
new files belong to the sandbox user.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager

from rollcage.errors import SandboxFileError

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # same number on every architecture (generic syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2(dirfd: int, path: str, flags: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


@contextmanager
def _as_user(uid: int) -> Iterator[None]:
    """Switch this thread's filesystem uid/gid (setfsuid is per-thread on Linux)."""
    _libc.setfsgid(uid)
    _libc.setfsuid(uid)
    try:
        yield
    finally:
        _libc.setfsuid(0)
        _libc.setfsgid(0)


def _inside(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise SandboxFileError(f"sandbox paths must be absolute strings, got {path!r}")
    return posixpath.normpath(path).lstrip("/") or "."


def _error(exc: OSError, path: str) -> SandboxFileError:
    reasons = {
        errno.ENOENT: "no such file or directory",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EISDIR: "is a directory",
        errno.ENOTDIR: "a parent is not a directory",
        errno.ENOSPC: "no space left",
        errno.EXDEV: "path escapes the sandbox",
        errno.ELOOP: "too many symbolic links",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return SandboxFileError(exc.errno or 0, f"{reason}: {path} (inside the sandbox)")


class SandboxFiles:
    """Reads and writes files inside one sandbox."""

    def __init__(self, pid: int, uid: int) -> None:
        self._root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._uid = uid

    def close(self) -> None:
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    def write(self, path: str, data: bytes, mode: int = 0o644, make_parents: bool = True) -> None:
        rel = _inside(path)
        with _as_user(self._uid):
            try:
                if make_parents:
                    self._make_parents(rel)
                fd = _openat2(self._root, rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            except OSError as exc:
                raise _error(exc, path) from None

    def read(self, path: str, max_bytes: int) -> bytes:
        rel = _inside(path)
        with _as_user(self._uid):
            try:
                fd = _openat2(self._root, rel, os.O_RDONLY)
                try:
                    size = os.fstat(fd).st_size
                    if size > max_bytes:
                        raise SandboxFileError(errno.EFBIG, f"{path} is {size} bytes, more than max_bytes={max_bytes}")
                    chunks, total = [], 0
                    while chunk := os.read(fd, 1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise SandboxFileError(errno.EFBIG, f"{path} is more than max_bytes={max_bytes}")
                        chunks.append(chunk)
                    return b"".join(chunks)
                finally:
                    os.close(fd)
            except SandboxFileError:
                raise
            except OSError as exc:
                raise _error(exc, path) from None

    def _make_parents(self, rel: str) -> None:
        parent = posixpath.dirname(rel)
        if not parent:
            return
        parts = parent.split("/")
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            try:
                os.close(_openat2(self._root, prefix, os.O_PATH | os.O_DIRECTORY))
            except FileNotFoundError:
                above = "/".join(parts[:i]) or "."
                dirfd = _openat2(self._root, above, os.O_PATH | os.O_DIRECTORY)
                try:
                    os.mkdir(parts[i], 0o755, dir_fd=dirfd)
                except FileExistsError:
                    pass
                finally:
                    os.close(dirfd)
