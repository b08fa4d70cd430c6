"""Resource sensor: per-sandbox CPU, memory and pids from the sandbox's cgroup.

:class:`ResourceSampler` reads one sandbox's counters (cgroup v1: ``cpuacct.usage``,
``memory.usage_in_bytes``, ``pids.current``; v2: ``cpu.stat`` usage_usec,
``memory.current``, ``pids.current``) and turns the CPU counter into ``cpu_pct``, percent
of one core over the time since the previous sample (200 = two cores busy).
:class:`ResourceMonitor` is one thread that samples every registered sandbox (and the GPU
sampler, if given) every ``interval`` seconds and hands ``resource`` event data to each
sandbox's callback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollcage.monitor.gpu import GpuSampler
    from rollcage.sandbox.cgroups import Cgroup

log = logging.getLogger(__name__)

ResourceCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CgroupPaths:
    """The counter files of one sandbox's cgroup."""

    cpu_usage: Path | None  # v1: cpuacct.usage (ns); v2: cpu.stat (usage_usec line)
    memory: Path | None  # v1: memory.usage_in_bytes; v2: memory.current
    pids: Path | None  # pids.current
    v2: bool

    @classmethod
    def of(cls, cgroup: Cgroup) -> CgroupPaths:
        if cgroup.v2:
            d = cgroup.dirs[0]
            return cls(d / "cpu.stat", d / "memory.current", d / "pids.current", True)
        from rollcage.sandbox import cgroups
        from rollcage.sandbox.paths import cgroup_parent

        mount = cgroups._v1_mounts().get("cpuacct")
        cpuacct = mount / cgroup_parent() / cgroup.name / "cpuacct.usage" if mount else None
        return cls(cpuacct, cgroup.memory_dir / "memory.usage_in_bytes", cgroup.procs_dir / "pids.current", False)


class ResourceSampler:
    """Samples one sandbox: ``sample() -> {"cpu_pct", "memory_bytes", "pids"}``.

    ``cpu_pct`` covers the time since the previous sample (or since construction for the
    first one); any reading that cannot be taken (cgroup gone) is None.
    """

    def __init__(self, cgroup_paths: CgroupPaths | Cgroup, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = cgroup_paths if isinstance(cgroup_paths, CgroupPaths) else CgroupPaths.of(cgroup_paths)
        self._clock = clock
        self._last_usage_ns = self.cpu_usage_ns()
        self._last_time = clock()

    def cpu_usage_ns(self) -> int | None:
        """Total CPU time the sandbox has used, in nanoseconds."""
        path = self.paths.cpu_usage
        if path is None:
            return None
        try:
            text = path.read_text()
        except OSError:
            return None
        if not self.paths.v2:
            with contextlib.suppress(ValueError):
                return int(text.split()[0])
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * 1000
        return None

    def sample(self) -> dict[str, Any]:
        usage, now = self.cpu_usage_ns(), self._clock()
        cpu_pct = None
        elapsed = now - self._last_time
        if usage is not None and self._last_usage_ns is not None and elapsed > 0:
            cpu_pct = round(max(0, usage - self._last_usage_ns) / (elapsed * 1e9) * 100, 2)
        if usage is not None:
            self._last_usage_ns, self._last_time = usage, now
        return {"cpu_pct": cpu_pct, "memory_bytes": _read_int(self.paths.memory), "pids": _read_int(self.paths.pids)}


class ResourceMonitor:
    """One thread sampling every added sandbox each ``interval`` seconds.

    ``add(key, sampler, callback)``; the callback gets ``resource`` event data and runs on
    the monitor thread. If ``gpu`` is given, its :meth:`GpuSampler.sample` runs each tick
    too (it delivers ``gpu`` events to its own registrations).
    """

    def __init__(self, interval: float = 1.0, gpu: GpuSampler | None = None) -> None:
        if not interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        self.interval = interval
        self.gpu = gpu
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[ResourceSampler, ResourceCallback]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.callback_errors = 0

    def add(self, key: str, sampler: ResourceSampler, callback: ResourceCallback) -> None:
        with self._lock:
            self._entries[key] = (sampler, callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rollcage-resources", daemon=True)
                self._thread.start()

    def remove(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def sample_all(self) -> None:
        """Take one sample of everything now (the thread calls this every interval)."""
        with self._lock:
            entries = list(self._entries.items())
        for key, (sampler, callback) in entries:
            try:
                callback(sampler.sample())
            except Exception:
                self.callback_errors += 1
                log.exception("resource sample for %s failed", key)
        if self.gpu is not None:
            try:
                self.gpu.sample()
            except Exception:
                log.exception("gpu sample failed")
        self.ticks += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 2)

    def _run(self) -> None:
        next_tick = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            self.sample_all()
            next_tick += self.interval
            if next_tick < time.monotonic():  # fell behind (suspended host): do not burst
                next_tick = time.monotonic() + self.interval


def _read_int(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
