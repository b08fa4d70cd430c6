"""Move bytes between a sandbox connection and its upstream without copying them through Python.

One thread per flow polls both sockets and moves data with ``splice(2)`` through a pipe per
direction, so an allowed bulk transfer runs at close to kernel speed. Half-closes are passed
on (a client's EOF becomes a ``shutdown(SHUT_WR)`` upstream) and an error on either side
closes both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK)


@dataclass
class _Direction:
    src: socket.socket
    dst: socket.socket
    pipe: tuple[int, int] = field(default_factory=os.pipe)
    pending: int = 0
    eof: bool = False
    done: bool = False
    moved: int = 0

    def __post_init__(self) -> None:
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(self.pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)

    def pump_in(self) -> None:
        """Socket to pipe, while nothing is waiting in the pipe."""
        if self.pending or self.eof:
            return
        try:
            n = os.splice(self.src.fileno(), self.pipe[1], _CHUNK, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return
        if n == 0:
            self.eof = True
        self.pending += n

    def pump_out(self) -> None:
        """Pipe to socket; on the source's EOF with nothing pending, half-close the destination."""
        while self.pending:
            try:
                n = os.splice(self.pipe[0], self.dst.fileno(), self.pending,
                              flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)  # fmt: skip
            except BlockingIOError:
                return
            self.pending -= n
            self.moved += n
        if self.eof and not self.done:
            self.done = True
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for fd in self.pipe:
            with contextlib.suppress(OSError):
                os.close(fd)


def relay(client: socket.socket, upstream: socket.socket, on_done: Callable[[int, int, str | None], None]) -> None:
    """Start relaying on a new thread; ``on_done(bytes_out, bytes_in, error)`` is called once at the end."""
    thread = threading.Thread(target=_run, args=(client, upstream, on_done), name="rollcage-relay", daemon=True)
    thread.start()


def _run(client: socket.socket, upstream: socket.socket, on_done: Callable[[int, int, str | None], None]) -> None:
    out = _Direction(client, upstream)
    back = _Direction(upstream, client)
    error: str | None = None
    poller = select.poll()
    try:
        for sock in (client, upstream):
            sock.setblocking(False)
            poller.register(sock.fileno(), 0)
        while not (out.done and back.done):
            masks = {client.fileno(): 0, upstream.fileno(): 0}
            for d in (out, back):
                if d.done:
                    continue
                if d.pending:
                    masks[d.dst.fileno()] |= select.POLLOUT
                elif not d.eof:
                    masks[d.src.fileno()] |= select.POLLIN
            for fd, mask in masks.items():
                poller.modify(fd, mask)
            ready = poller.poll(60_000)
            if any(ev & (select.POLLERR | select.POLLNVAL) for _, ev in ready):
                error = _socket_error(client) or _socket_error(upstream) or "connection error"
                break
            for d in (out, back):
                if not d.done:
                    d.pump_in()
                    d.pump_out()
    except OSError as exc:
        if exc.errno not in _RETRY:
            error = os.strerror(exc.errno) if exc.errno else str(exc)
    finally:
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                if error:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
        out.close()
        back.close()
        on_done(out.moved, back.moved, error)


def _socket_error(sock: socket.socket) -> str | None:
    try:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError:
        return None
    return os.strerror(code) if code else None
