"""Move bytes between a sandbox connection and its upstream without copying them through Python.

The gateway's event loop watches both sockets of a flow. The first chunk each way is copied
with recv/send: most flows are a few KiB, and a pipe pair would cost more syscalls than
the bytes. A direction whose chunk fills the copy buffer turns to ``splice(2)`` through a
pipe, so a bulk transfer runs at close to kernel speed, and no flow costs a thread.
Half-closes are passed on (a client's EOF becomes a ``shutdown(SHUT_WR)`` upstream) and an
error on either side closes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

_COPY_CHUNK = 64 * 1024
_CHUNK = 1 << 20
_ROUNDS = 16
_GROW_AFTER = 256 * 1024
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


@dataclass
class _Direction:
    src: socket.socket
    dst: socket.socket
    pipe: tuple[int, int] | None = None  # made once the direction turns out to carry bulk data
    buffer: bytes = b""  # copied bytes not yet sent on
    pending: int = 0  # bytes waiting in the pipe
    eof: bool = False
    done: bool = False
    moved: int = 0
    watching: tuple[bool, int] | None = None  # (for writing?, fd) the loop watches for this direction
    drained: bool = False  # the last copy read came back short: wait for readiness, don't read again

    @property
    def waiting(self) -> int:
        """Bytes read from the source and not yet written to the destination."""
        return len(self.buffer) + self.pending

    def pump_in(self) -> None:
        """Source to buffer or pipe, while nothing is waiting."""
        if self.buffer or self.pending or self.eof:
            return
        if self.pipe is None:
            try:
                data = self.src.recv(_COPY_CHUNK)
            except BlockingIOError:
                return
            if not data:
                self.eof = True
            self.buffer = data
            self.drained = len(data) < _COPY_CHUNK  # a short read: nothing more to read for now
            if not self.drained:
                self.pipe = os.pipe()  # a full buffer: bulk data, splice from now on
            return
        try:
            n = os.splice(self.src.fileno(), self.pipe[1], _CHUNK, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return
        if n == 0:
            self.eof = True
        elif self.moved < _GROW_AFTER <= self.moved + n:
            with contextlib.suppress(OSError):  # a 1 MiB pipe once the flow is clearly bulk
                fcntl.fcntl(self.pipe[1], _F_SETPIPE_SZ, _PIPE_SIZE)
        self.pending += n

    def pump_out(self) -> None:
        """Buffer and pipe to the destination; on the source's EOF with nothing waiting,
        half-close the destination."""
        if self.buffer:
            try:
                n = self.dst.send(self.buffer)
            except BlockingIOError:
                return
            self.buffer = self.buffer[n:]
            self.moved += n
            if self.buffer:
                return
        while self.pending:
            assert self.pipe is not None
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
        if self.pipe is not None:
            for fd in self.pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)


class LoopRelay:
    """Relay one flow on the gateway's event loop: readiness callbacks, recv/send for the first
    chunk each way and ``splice(2)`` for bulk.

    No thread per flow: a short connection costs a few callbacks, and a bulk transfer still moves
    its data kernel-side. ``on_done(bytes_out, bytes_in, error)`` runs once, on the loop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: socket.socket,
        upstream: socket.socket,
        on_done: Callable[[int, int, str | None], None],
    ) -> None:
        self.loop = loop
        self.client, self.upstream = client, upstream
        self.on_done = on_done
        self.out = _Direction(client, upstream)
        self.back = _Direction(upstream, client)
        self.finished = False
        for sock in (client, upstream):
            if sock.gettimeout() != 0:  # already non-blocking as the gateway hands them over: no syscall
                sock.setblocking(False)
        self._arm(self.out)
        self._arm(self.back)

    def _arm(self, d: _Direction) -> None:
        """Watch what this direction waits for: its destination while bytes are pending, else its
        source. Registrations change only when that changes (a chatty flow re-arms nothing)."""
        want = None
        if not self.finished and not d.done:
            if d.waiting:
                want = (True, d.dst.fileno())
            elif not d.eof:
                want = (False, d.src.fileno())
        if want == d.watching:
            return
        self._unwatch(d)
        if want is not None:
            if want[0]:
                self.loop.add_writer(want[1], self._step, d)
            else:
                self.loop.add_reader(want[1], self._step, d)
        d.watching = want

    def _unwatch(self, d: _Direction) -> None:
        if d.watching is not None:
            writing, fd = d.watching
            (self.loop.remove_writer if writing else self.loop.remove_reader)(fd)
            d.watching = None

    def _step(self, d: _Direction) -> None:
        try:
            for _ in range(_ROUNDS):  # keep going while bytes flow: fewer loop wake-ups per megabyte
                before = d.moved + d.waiting
                d.pump_in()
                d.pump_out()
                if d.waiting or d.eof or d.drained or d.moved + d.waiting == before:
                    break
        except OSError as exc:
            self._finish(os.strerror(exc.errno) if exc.errno else str(exc))
            return
        if self.out.done and self.back.done:
            self._finish(None)
        else:
            self._arm(d)

    def abort(self) -> None:
        """End the flow now (its sandbox is leaving)."""
        self._finish("closed by the gateway")

    def _finish(self, error: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        for d in (self.out, self.back):
            with contextlib.suppress(OSError, ValueError):
                self._unwatch(d)
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                if error:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
        self.out.close()
        self.back.close()
        self.on_done(self.out.moved, self.back.moved, error)
