"""The bubblewrap command line that builds a sandbox.

The new root is an empty tmpfs into which each top-level directory of the host root (or
of the configured rootfs) is bind-mounted read-only; then the root itself is remounted
read-only. That way the workspace, ``/tmp``, ``/root`` and ``/run`` can be private
writable mounts even on hosts where those paths do not exist, and host directories that
hold secrets or other sandboxes' state are simply never mounted.
"""

from __future__ import annotations

import os
from pathlib import Path

from rollcage.config import SandboxConfig
from rollcage.errors import ConfigError
from rollcage.sandbox.host import bwrap_path
from rollcage.sandbox.paths import state_dir

# Top-level host entries never mounted: host secrets, sockets, kernel interfaces,
# per-boot state. /proc and /dev are replaced by private instances.
HIDDEN_TOP_LEVEL = frozenset(
    {"root", "home", "run", "tmp", "proc", "sys", "dev", "mnt", "media", "boot", "lost+found", "srv", "work"}
)
CONTROL_MOUNT = "/run/rollcage"
PRIVATE_SMALL_TMPFS = str(16 * 1024 * 1024)

# The in-sandbox agent: starts named sessions on request. POSIX sh so any rootfs works.
# Job control (set -m) keeps SIGINT un-ignored in the sessions it starts.
AGENT_SCRIPT = r"""
set -m 2>/dev/null
while read -r op name; do
  case "$op" in
    spawn)
      bash --norc --noprofile --noediting -i <"/run/rollcage/$name.in" >"/run/rollcage/$name.out" 2>/dev/null &
      echo "spawned $name $!";;
    *) echo "error unknown-op";;
  esac
done
"""


def _root_entries(root: Path) -> list[tuple[str, str | None]]:
    """(name, symlink target, or None for a directory or file to bind) per top entry."""
    entries = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name in HIDDEN_TOP_LEVEL:
            continue
        if entry.is_symlink():
            entries.append((entry.name, os.readlink(entry.path)))
        elif entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
            entries.append((entry.name, None))
    return entries


def bwrap_args(
    config: SandboxConfig, control_dir: Path, workspace: Path, info_fd: int, resolv_conf: Path | None = None
) -> list[str]:
    """Full argv for bubblewrap running the agent in a fresh sandbox.

    ``resolv_conf`` (sandboxes with a network path) is mounted over ``/etc/resolv.conf`` so
    that every lookup goes to the gateway's resolver.
    """
    root = config.rootfs or Path("/")
    entries = _root_entries(root)
    top = config.workdir.strip("/").split("/")[0]
    if any(name == top for name, _ in entries):
        raise ConfigError(
            f"workdir {config.workdir!r} lies inside read-only /{top}; choose a path under "
            "a directory that is not mounted from the host, e.g. /work or /home/agent"
        )
    args = [
        bwrap_path(),
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--unshare-net", "--unshare-cgroup",
        "--uid", "0", "--gid", "0",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--info-fd", str(info_fd),
        "--tmpfs", "/",
    ]  # fmt: skip
    for name, link in entries:
        if link is None:
            args += ["--ro-bind", str(root / name), f"/{name}"]
        else:
            args += ["--symlink", link, f"/{name}"]
    hidden_state = state_dir()
    if config.rootfs is None and hidden_state.is_dir() and hidden_state.parts[1] not in HIDDEN_TOP_LEVEL:
        args += ["--tmpfs", str(hidden_state)]
    args += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(config.tmp_size), "--tmpfs", "/tmp",
        "--size", PRIVATE_SMALL_TMPFS, "--tmpfs", "/root",
        "--size", PRIVATE_SMALL_TMPFS, "--tmpfs", "/run",
        "--ro-bind", str(control_dir), CONTROL_MOUNT,
        "--bind", str(workspace), config.workdir,
    ]  # fmt: skip
    target = root / "etc" / "resolv.conf"
    if resolv_conf is not None and target.is_file() and not target.is_symlink():
        args += ["--ro-bind", str(resolv_conf), "/etc/resolv.conf"]
    args += [
        "--remount-ro", "/",
        "--hostname", config.hostname,
        "--clearenv",
    ]  # fmt: skip
    for key, value in sandbox_environment(config).items():
        args += ["--setenv", key, value]
    args += ["--chdir", config.workdir, "--", "/bin/sh", "-c", AGENT_SCRIPT]
    return args


def sandbox_environment(config: SandboxConfig) -> dict[str, str]:
    """A clean environment: nothing from the host unless the config passes it."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "USER": "root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PS1": "",
        "PS2": "",
    }
    env.update(config.env)
    return env
