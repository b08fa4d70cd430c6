"""Where rollcage keeps per-sandbox state on the host.

Runtime state (control fifos, uid leases, metadata for ``rollcage gc``) lives on tmpfs
under ``/run`` so a reboot clears it together with the cgroups it describes; workspaces
live on disk under the state directory. Both can be moved with environment variables,
which tests use to keep their state apart.
"""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    return Path(os.environ.get("ROLLCAGE_RUNTIME_DIR", "/run/rollcage"))


def state_dir() -> Path:
    return Path(os.environ.get("ROLLCAGE_STATE_DIR", "/var/lib/rollcage"))


def sandboxes_dir() -> Path:
    return runtime_dir() / "sandboxes"


def sandbox_runtime_dir(sandbox_id: str) -> Path:
    return sandboxes_dir() / sandbox_id


def uid_leases_dir() -> Path:
    return runtime_dir() / "uids"


def workspaces_dir() -> Path:
    return state_dir() / "workspaces"


def default_event_db() -> Path:
    return state_dir() / "events.db"


def cgroup_parent() -> str:
    """The directory under which every rollcage cgroup lives, in each hierarchy."""
    return os.environ.get("ROLLCAGE_CGROUP_PARENT", "rollcage")


def prepare_shared_dir(path: Path) -> None:
    """Create ``path`` so that sandbox uids can traverse it (but not list it), and check
    every ancestor is traversable too; bubblewrap runs as the sandbox's own uid."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711)
    check_traversable(path)


def check_traversable(path: Path) -> None:
    """Raise a clear error when some ancestor of ``path`` is closed to other users."""
    from rollcage.errors import HostError

    for ancestor in path.parents:
        if not os.stat(ancestor).st_mode & 0o001:
            raise HostError(
                f"{ancestor} is not traversable by other users (mode lacks o+x); sandboxes run "
                f"under their own uid and must reach {path}. chmod o+x it or move it."
            )
