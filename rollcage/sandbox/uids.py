"""Per-sandbox host uid leases.

Each sandbox's root user maps to its own unprivileged host uid, so sandboxes cannot touch
each other's files or processes even if a mount leaked, and a socket or file seen on the
host names its sandbox by owner. Leases are files created with O_EXCL, so concurrent
supervisors never hand out the same uid.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from rollcage.errors import HostError
from rollcage.sandbox.paths import uid_leases_dir

UID_BASE = int(os.environ.get("ROLLCAGE_UID_BASE", "2000000"))
UID_COUNT = 65536


def lease_uid(sandbox_id: str) -> int:
    """Reserve a free uid for ``sandbox_id``; raises when the range is exhausted."""
    directory = uid_leases_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    start = secrets.randbelow(UID_COUNT)
    for offset in range(UID_COUNT):
        uid = UID_BASE + (start + offset) % UID_COUNT
        try:
            fd = os.open(directory / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(sandbox_id)
        return uid
    raise HostError(f"all {UID_COUNT} sandbox uids are in use; run `rollcage gc`")


def release_uid(uid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(uid_leases_dir() / str(uid))


def leased_uids() -> dict[int, str]:
    """uid -> sandbox id for every lease on disk (for gc)."""
    leases: dict[int, str] = {}
    directory = uid_leases_dir()
    if not directory.is_dir():
        return leases
    for entry in directory.iterdir():
        try:
            leases[int(entry.name)] = entry.read_text().strip()
        except (ValueError, OSError):
            continue
    return leases
