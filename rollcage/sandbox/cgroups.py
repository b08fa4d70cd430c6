"""Per-sandbox cgroups on cgroup v1 and v2 behind one small interface.

A sandbox's processes all live in its cgroup from their first instruction (the
supervisor writes "0" to ``cgroup.procs`` in the child before bubblewrap runs), so limits
apply to everything, the OOM killer picks victims inside the sandbox, and "every process
of this sandbox" is a file read away for killing and for the exec sensor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from rollcage.errors import HostError
from rollcage.sandbox.paths import cgroup_parent

CGROUP_ROOT = Path(os.environ.get("ROLLCAGE_CGROUP_ROOT", "/sys/fs/cgroup"))
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    memory: int
    pids: int
    cpus: float


def is_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def _v1_mounts() -> dict[str, Path]:
    """controller -> mount point, from /proc/self/mounts (handles co-mounted cpu,cpuacct)."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4 or parts[2] != "cgroup":
                continue
            options = set(parts[3].split(","))
            for controller in V1_CONTROLLERS:
                if controller in options and controller not in mounts:
                    mounts[controller] = Path(parts[1])
    return mounts


class Cgroup:
    """The cgroup(s) of one sandbox: create with limits, join, list, kill, remove."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.v2 = is_v2()
        if self.v2:
            self.dirs = [CGROUP_ROOT / cgroup_parent() / name]
            self.procs_dir = self.dirs[0]
            self.memory_dir = self.cpu_dir = self.dirs[0]
            self.freezer_dir: Path | None = None
        else:
            mounts = _v1_mounts()
            missing = [c for c in ("memory", "pids", "cpu") if c not in mounts]
            if missing:
                raise HostError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
            unique: dict[Path, Path] = {}
            for mount in mounts.values():
                unique.setdefault(mount.resolve(), mount / cgroup_parent() / name)
            self.dirs = list(unique.values())
            self.procs_dir = mounts["pids"] / cgroup_parent() / name
            self.memory_dir = mounts["memory"] / cgroup_parent() / name
            self.cpu_dir = mounts["cpu"] / cgroup_parent() / name
            self.freezer_dir = mounts["freezer"] / cgroup_parent() / name if "freezer" in mounts else None

    # -- lifecycle -------------------------------------------------------------------

    def create(self, limits: Limits) -> None:
        """Make the directories and write the limits; removes what it made on failure."""
        try:
            if self.v2:
                self._create_v2(limits)
            else:
                self._create_v1(limits)
        except OSError as exc:
            self.remove()
            raise HostError(f"cannot create cgroup {self.name}: {exc}") from exc

    def _create_v1(self, limits: Limits) -> None:
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=False)
            cpuset = directory / "cpuset.cpus"
            if cpuset.exists():  # cpuset co-mounted: must be filled before joining
                for key in ("cpuset.cpus", "cpuset.mems"):
                    (directory.parent / key).write_text((directory.parent.parent / key).read_text())
                    (directory / key).write_text((directory.parent / key).read_text())
        _write(self.memory_dir / "memory.limit_in_bytes", limits.memory)
        memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            _write(memsw, limits.memory)
        _write(self.procs_dir / "pids.max", limits.pids)
        _write(self.cpu_dir / "cpu.cfs_period_us", CPU_PERIOD_US)
        _write(self.cpu_dir / "cpu.cfs_quota_us", max(1000, int(limits.cpus * CPU_PERIOD_US)))

    def _create_v2(self, limits: Limits) -> None:
        parent = self.dirs[0].parent
        parent.mkdir(exist_ok=True)
        wanted = {"memory", "pids", "cpu"}
        for level in (CGROUP_ROOT, parent):
            enabled = set((level / "cgroup.subtree_control").read_text().split())
            todo = wanted - enabled
            if todo:
                try:
                    (level / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(todo)))
                except OSError as exc:
                    raise HostError(
                        f"cannot enable cgroup v2 controllers {sorted(todo)} in {level}: {exc}; "
                        "move the supervisor out of the cgroup root or delegate a subtree"
                    ) from exc
        directory = self.dirs[0]
        directory.mkdir(exist_ok=False)
        _write(directory / "memory.max", limits.memory)
        if (directory / "memory.swap.max").exists():
            _write(directory / "memory.swap.max", 0)
        _write(directory / "pids.max", limits.pids)
        _write(directory / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")

    def join_fds(self) -> list[int]:
        """Open ``cgroup.procs`` of every hierarchy; a child writes b"0" to each to join."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def pids(self) -> list[int]:
        try:
            text = (self.procs_dir / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def kill_all(self, timeout: float = 2.0) -> bool:
        """SIGKILL every process; freeze first on v1 so nothing can fork in between.
        Returns True when the cgroup is empty."""
        deadline = time.monotonic() + timeout
        if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", 1)
        while True:
            pids = self.pids()
            if not pids:
                return True
            self._freeze(True)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._freeze(False)
            if time.monotonic() > deadline:
                return not self.pids()
            time.sleep(0.005)

    def _freeze(self, frozen: bool) -> None:
        with contextlib.suppress(OSError):
            self.freeze(frozen)

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) every process of the cgroup where it stands (the cgroup freezer)."""
        if self.v2:
            _write(self.dirs[0] / "cgroup.freeze", 1 if frozen else 0)
        elif self.freezer_dir is not None:
            _write(self.freezer_dir / "freezer.state", "FROZEN" if frozen else "THAWED")
        else:
            raise HostError("the cgroup freezer is not available on this host")

    def remove(self, timeout: float = 2.0) -> list[Path]:
        """rmdir every hierarchy's directory (retrying while exiting tasks leave).
        Returns the directories that were removed."""
        removed = []
        deadline = time.monotonic() + timeout
        for directory in self.dirs:
            while True:
                try:
                    directory.rmdir()
                    removed.append(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
        return removed

    # -- readings --------------------------------------------------------------------

    def memory_bytes(self) -> int | None:
        name = "memory.current" if self.v2 else "memory.usage_in_bytes"
        return _read_int(self.memory_dir / name)

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this sandbox."""
        events = self.memory_dir / ("memory.events" if self.v2 else "memory.oom_control")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0


def existing_cgroup_names() -> dict[str, list[Path]]:
    """name -> directories of every rollcage cgroup on the host (for gc)."""
    found: dict[str, list[Path]] = {}
    roots = [CGROUP_ROOT] if is_v2() else list({m.resolve(): m for m in _v1_mounts().values()}.values())
    for root in roots:
        parent = root / cgroup_parent()
        if parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir():
                    found.setdefault(child.name, []).append(child)
    return found


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
