"""The end-of-command marker protocol under hostile chunking and leftovers."""

from __future__ import annotations

from rollcage.sandbox.markers import Marker, MarkerScanner

TOKEN = b"0123456789abcdef01234567"


def feed_all(scanner: MarkerScanner, chunks: list[bytes]) -> tuple[bytes, Marker | None]:
    out = b""
    for chunk in chunks:
        data, marker = scanner.feed(chunk)
        out += data
        if marker:
            return out, marker
    return out, None


def test_marker_split_across_every_byte_boundary() -> None:
    stream = b"hello" + TOKEN + b"_7 3\n" + b"after"
    for size in range(1, len(stream)):
        scanner = MarkerScanner(TOKEN, {"7"})
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        out, marker = feed_all(scanner, chunks)
        assert (out, marker) == (b"hello", Marker("7", 3)), size


def test_stale_markers_are_removed_and_ignored() -> None:
    scanner = MarkerScanner(TOKEN, {"2"})
    out, marker = feed_all(scanner, [b"a" + TOKEN + b"_r1x0 0\nb" + TOKEN + b"_2 0\n"])
    assert (out, marker) == (b"ab", Marker("2", 0))


def test_output_that_looks_like_a_token_prefix_is_released() -> None:
    scanner = MarkerScanner(TOKEN, {"1"})
    data, marker = scanner.feed(b"x" + TOKEN[:5] + b"y")
    assert marker is None and data == b"x" + TOKEN[:5] + b"y"
    data, marker = scanner.feed(b"ends with " + TOKEN[:4])
    assert data == b"ends with " and scanner.rest() == TOKEN[:4]


def test_negative_and_large_status() -> None:
    scanner = MarkerScanner(TOKEN, {"exit"})
    assert scanner.feed(TOKEN + b"_exit 255\n") == (b"", Marker("exit", 255))
