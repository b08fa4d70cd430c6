"""Bearer-token authentication: one token per server, generated on first start and kept
owner-only (0600) in the state directory, or read from ``--token-file``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from rollcage.errors import HostError

TOKEN_FILE_NAME = "server.token"


def default_token_file() -> Path:
    from rollcage.sandbox.paths import state_dir

    return state_dir() / TOKEN_FILE_NAME


def load_or_create_token(path: Path | None = None) -> str:
    """The token in ``path`` (default: the state directory's); created (0600) when absent."""
    path = Path(path) if path is not None else default_token_file()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise HostError(f"cannot read token file {path}: {exc.strerror}") from None
    if token:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise HostError(f"token file {path} is readable by others (mode {mode:o}); chmod 600 it")
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return token


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
