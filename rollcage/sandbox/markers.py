"""Finding end-of-command markers in a session's output stream.

The session shell prints ``<token>_<tag> <status>\\n`` after each command. The token is
random per session, so command output cannot collide with it by accident. Markers with
a tag nobody is waiting for (left over from an earlier timeout recovery) are removed
from the stream and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Marker:
    tag: str
    status: int


class MarkerScanner:
    """Feed raw chunks; get back output bytes and the first expected marker, if any."""

    def __init__(self, token: bytes, expected: set[str]) -> None:
        self._token = token
        self._expected = expected
        self._pending = bytearray()
        self._line = re.compile(re.escape(token) + rb"_([A-Za-z0-9]+) (-?\d+)\n")

    def expect(self, tag: str) -> None:
        self._expected.add(tag)

    def feed(self, chunk: bytes) -> tuple[bytes, Marker | None]:
        self._pending += chunk
        out = bytearray()
        while True:
            index = self._pending.find(self._token)
            if index < 0:
                cut = len(self._pending) - self._possible_marker_start()
                out += self._pending[:cut]
                del self._pending[:cut]
                return bytes(out), None
            match = self._line.match(self._pending, index)
            if match is None:
                # token seen but its line is incomplete (or garbled): wait for more bytes,
                # unless the line is clearly not a marker.
                if len(self._pending) - index > len(self._token) + 32:
                    out += self._pending[: index + 1]
                    del self._pending[: index + 1]
                    continue
                out += self._pending[:index]
                del self._pending[:index]
                return bytes(out), None
            out += self._pending[:index]
            tag, status = match.group(1).decode(), int(match.group(2))
            del self._pending[: match.end()]
            if tag in self._expected:
                return bytes(out), Marker(tag, status)

    def _possible_marker_start(self) -> int:
        """Length of the longest tail of the buffer that could begin a marker."""
        for size in range(min(len(self._token) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(self._token[:size]):
                return size
        return 0

    def rest(self) -> bytes:
        """Bytes held back while waiting for a possible marker."""
        data = bytes(self._pending)
        self._pending.clear()
        return data
