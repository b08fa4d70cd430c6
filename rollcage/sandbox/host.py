"""Preconditions on the host: root, bubblewrap. Checked once, with messages that say
what to install or how to run."""

from __future__ import annotations

import functools
import os
import shutil

from rollcage.errors import HostError


def require_root() -> None:
    if os.geteuid() != 0:
        raise HostError(
            "rollcage needs root: it creates cgroups, user and network namespaces and "
            "runs each sandbox under its own unprivileged uid. Run it as root (e.g. with sudo)."
        )


@functools.cache
def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise HostError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    return path


def read_int_file(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@functools.cache
def raise_fd_limit() -> None:
    """Each sandbox holds a handful of descriptors; hundreds of sandboxes need more
    than the usual soft limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
