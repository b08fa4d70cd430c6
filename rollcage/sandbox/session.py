"""A persistent shell session inside a sandbox, driven over a pair of fifos.

Each command is sent as one line that sources it from a here-string,
``{ . /dev/fd/9 9<<< '<command>'; } </dev/null 2>&1``, followed by a marker that carries
its exit status: ``cd`` and ``export`` persist between commands, commands cannot read
the control stream, and (being sourced) background jobs print no ``[1] 1234`` notices.
The shell runs in interactive mode so that SIGINT aborts a runaway builtin loop and
returns to reading commands; together with killing the command's process tree this
makes a timeout leave the session usable.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable

from rollcage.errors import SessionError
from rollcage.sandbox.markers import Marker, MarkerScanner
from rollcage.sandbox.result import CommandResult

SESSION_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TIMEOUT_EXIT_CODE = 124
_READ_CHUNK = 1 << 16
_KILL_SETTLE_S = 0.2
_RECOVERY_TRIES = 3
_RECOVERY_WAIT_S = 0.3

OutputCallback = Callable[[str], None]
TreeKiller = Callable[[set[int], int], None]


def check_session_name(name: str) -> str:
    if not isinstance(name, str) or not SESSION_NAME.match(name):
        raise SessionError(f"invalid session name {name!r}: use 1-64 of [A-Za-z0-9_.-]")
    return name


def shell_quote(text: str) -> str:
    """Single-quote for bash; the only character needing care is the quote itself."""
    return "'" + text.replace("'", "'\\''") + "'"


class Session:
    """Host side of one shell session. One command at a time: hold ``lock``."""

    def __init__(self, name: str, in_fd: int, out_fd: int, shell_pid: int) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.shell_pid = shell_pid
        self.step: int | None = None  # step of the command running now (processes it starts belong to it)
        self._in = in_fd
        self._out = out_fd
        self._pidfd = os.pidfd_open(shell_pid)
        self._token = secrets.token_hex(12).encode()
        self._seq = 0
        self._carry = b""
        self.alive = True
        prologue = (
            "set +H +o history; unset HISTFILE PROMPT_COMMAND; PS1=; PS2=; "
            f'trap \'printf "%s_exit %d\\n" {self._token.decode()} "$?"\' EXIT\n'
        )
        self._send(prologue)
        # One round trip proves the shell is reading and our markers come back.
        if not self.run("true", timeout=10, limit=1024, killer=lambda before, shell: None).ok:
            raise SessionError(f"session {name!r} did not start")

    # -- public ----------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float,
        limit: int,
        killer: TreeKiller,
        before: set[int] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run ``command`` in this shell; see :class:`CommandResult` for the outcome."""
        if not self.alive:
            raise SessionError(f"session {self.name!r} has exited")
        if "\0" in command:
            raise SessionError("commands cannot contain NUL bytes")
        self._seq += 1
        tag = str(self._seq)
        scanner = MarkerScanner(self._token, {tag, "exit"})
        collector = _Collector(limit, on_output)
        start = time.monotonic()
        collector.add(self._carry)
        self._carry = b""
        self._send(
            f"{{ . /dev/fd/9 9<<< {shell_quote(command)}; }} </dev/null 2>&1; "
            f"printf '%s_{tag} %d\\n' {self._token.decode()} \"$?\"\n"
        )
        marker = self._read_until(scanner, collector, start + timeout)
        timed_out = False
        restarted = False
        if marker is None and self.alive:
            timed_out = True
            marker, restarted = self._recover(scanner, collector, before or set(), killer)
        self._carry = scanner.rest()
        if marker is not None and marker.tag == "exit":
            self.alive = False
            collector.drop_suffix(b"exit\n")  # what interactive bash prints on `exit`
        if marker is None and not timed_out:
            self.alive = False  # shell died without running its EXIT trap (killed)
        exit_code = TIMEOUT_EXIT_CODE if timed_out else (marker.status if marker else 137)
        return CommandResult(
            exit_code=exit_code,
            output=collector.text(),
            truncated=collector.truncated,
            duration_s=time.monotonic() - start,
            timed_out=timed_out,
            output_bytes=collector.total,
            session=self.name,
            session_restarted=restarted,
        )

    def close(self) -> None:
        self.alive = False
        for fd in (self._in, self._out, self._pidfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._in = self._out = self._pidfd = -1

    # -- internals -------------------------------------------------------------------

    def _send(self, text: str) -> None:
        data = memoryview(text.encode("utf-8", "surrogateescape"))
        while data:
            data = data[os.write(self._in, data) :]

    def _read_until(self, scanner: MarkerScanner, collector: _Collector, deadline: float) -> Marker | None:
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        poller.register(self._pidfd, select.POLLIN)
        shell_gone = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            events = poller.poll(max(1, int(remaining * 1000)) if not shell_gone else 20)
            readable = False
            for fd, _ in events:
                if fd == self._pidfd:
                    shell_gone = True
                else:
                    readable = True
            if readable:
                data, marker = scanner.feed(os.read(self._out, _READ_CHUNK))
                collector.add(data)
                if marker is not None:
                    return marker
            elif shell_gone:
                # The shell exited and the pipe is drained: no marker will come.
                self.alive = False
                collector.add(scanner.rest())
                return None

    def _recover(
        self, scanner: MarkerScanner, collector: _Collector, before: set[int], killer: TreeKiller
    ) -> tuple[Marker | None, bool]:
        """Stop a command that overran: kill its processes, then interrupt the shell."""
        killer(before, self.shell_pid)
        collector.mute()
        marker = self._read_until(scanner, collector, time.monotonic() + _KILL_SETTLE_S)
        for attempt in range(_RECOVERY_TRIES):
            if marker is not None or not self.alive:
                return marker, False
            tag = f"r{self._seq}x{attempt}"
            scanner.expect(tag)
            try:
                os.kill(self.shell_pid, signal.SIGINT)
            except ProcessLookupError:
                self.alive = False
                return None, False
            time.sleep(0.01)
            self._send(f"printf '%s_{tag} %d\\n' {self._token.decode()} 0\n")
            marker = self._read_until(scanner, collector, time.monotonic() + _RECOVERY_WAIT_S)
        if marker is None and self.alive:
            # The shell itself will not come back: end it; the sandbox starts a new one.
            os.kill(self.shell_pid, signal.SIGKILL)
            self.alive = False
            return None, True
        return marker, False


class _Collector:
    """Keeps the first ``limit`` bytes of output, counts the rest, streams it all."""

    def __init__(self, limit: int, on_output: OutputCallback | None) -> None:
        self.limit = limit
        self.total = 0
        self.truncated = False
        self._kept = bytearray()
        self._muted = False
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace") if on_output else None

    def add(self, data: bytes) -> None:
        if not data or self._muted:
            return
        self.total += len(data)
        room = self.limit - len(self._kept)
        if room > 0:
            self._kept += data[:room]
        if len(data) > room:
            self.truncated = True
        if self._decoder is not None and self._on_output is not None:
            text = self._decoder.decode(data)
            if text:
                self._on_output(text)

    def drop_suffix(self, suffix: bytes) -> None:
        if not self.truncated and self._kept.endswith(suffix):
            del self._kept[-len(suffix) :]
            self.total -= len(suffix)

    def mute(self) -> None:
        """After a timeout, output from the dying command is no longer the result."""
        self._muted = True

    def text(self) -> str:
        text = self._kept.decode("utf-8", "replace")
        if self.truncated and text.endswith("\ufffd"):
            text = text.rstrip("\ufffd")  # a multi-byte character cut by the limit
        return text
