"""Garbage collection after a crash: remove what dead supervisors left behind.

A supervisor killed with SIGKILL takes its sandboxes' processes with it (bubblewrap's
``--die-with-parent``), but directories, cgroups and uid leases stay. ``collect`` finds
everything whose owning supervisor is gone and removes it, leaving live sandboxes alone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rollcage.net.netns import list_netns, remove_netns
from rollcage.sandbox.cgroups import Cgroup, existing_cgroup_names
from rollcage.sandbox.paths import sandboxes_dir, workspaces_dir
from rollcage.sandbox.procs import start_ticks
from rollcage.sandbox.uids import leased_uids, release_uid


@dataclass
class GcReport:
    sandboxes: list[str] = field(default_factory=list)
    processes: int = 0
    cgroups: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    uid_leases: list[int] = field(default_factory=list)
    network_namespaces: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.sandboxes or self.processes or self.cgroups or self.directories or self.uid_leases
            or self.network_namespaces
        )  # fmt: skip

    def lines(self) -> list[str]:
        out = [f"sandbox {s}" for s in self.sandboxes]
        if self.processes:
            out.append(f"{self.processes} processes killed")
        out += [f"cgroup {c}" for c in self.cgroups]
        out += [f"directory {d}" for d in self.directories]
        out += [f"uid lease {u}" for u in self.uid_leases]
        out += [f"network namespace {n} (and its veths)" for n in self.network_namespaces]
        return out


def _supervisor_alive(meta: dict[str, object]) -> bool:
    pid = meta.get("supervisor_pid")
    if not isinstance(pid, int):
        return False
    ticks = start_ticks(pid)
    return ticks is not None and ticks == meta.get("supervisor_start")


def live_sandbox_ids() -> set[str]:
    """Sandboxes whose supervisor still runs (they must not be touched)."""
    live = set()
    root = sandboxes_dir()
    if root.is_dir():
        for entry in root.iterdir():
            try:
                meta = json.loads((entry / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if _supervisor_alive(meta):
                live.add(entry.name)
    return live


def collect() -> GcReport:
    """Remove every leftover of sandboxes whose supervisor is dead."""
    report = GcReport()
    live = live_sandbox_ids()
    root = sandboxes_dir()
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name not in live:
                report.sandboxes.append(entry.name)
    for name, _dirs in existing_cgroup_names().items():
        if name in live:
            continue
        cgroup = Cgroup(name)
        report.processes += len(cgroup.pids())
        cgroup.kill_all()
        removed = cgroup.remove()
        report.cgroups += [str(d) for d in removed]
        if name not in report.sandboxes:
            report.sandboxes.append(name)
    for parent in (root, workspaces_dir()):
        if parent.is_dir():
            for entry in sorted(parent.iterdir()):
                if entry.name not in live:
                    _remove(entry)
                    report.directories.append(str(entry))
    for uid, owner in leased_uids().items():
        if owner not in live:
            release_uid(uid)
            report.uid_leases.append(uid)
    for name in list_netns():
        owner_pid = _netns_owner(name)
        if owner_pid is not None and not Path(f"/proc/{owner_pid}").exists():
            remove_netns(name)  # deleting a namespace deletes the veth ends inside it, and so their peers
            report.network_namespaces.append(name)
    return report


_NETNS_PREFIXES = ("rcgw-", "rcsim-", "rctest-offline-", "rcdemo-offline-", "rcbench-offline-")


def _netns_owner(name: str) -> int | None:
    """The pid of the process that named a rollcage namespace (``rcgw-<pid>-<n>``), if it is one."""
    for prefix in _NETNS_PREFIXES:
        if name.startswith(prefix):
            digits = name[len(prefix) :].split("-")[0]
            return int(digits) if digits.isdigit() else None
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
