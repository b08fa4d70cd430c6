"""GPU sensor: which processes use which GPU, how hard, mapped to sandboxes.

A :class:`GpuSource` lists GPU processes (host pids). :class:`NvmlGpuSource` asks the
NVIDIA driver through NVML (``nvidia-ml-py``, imported lazily; on a host without the
driver it reports itself unavailable with the reason). :class:`SimulatedGpuSource` lets
tests and demos declare that real processes use a GPU, so everything after the source —
pid-to-sandbox mapping through ``/proc/<pid>/cgroup``, events, rules — runs for real.
:class:`GpuSampler` maps each GPU process to the sandbox whose cgroup holds it and hands
``gpu`` event data to that sandbox's callback. With no source, GPU rules are skipped and
:meth:`GpuSampler.status` says so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rollcage.monitor import proc_info

if TYPE_CHECKING:
    from rollcage.sandbox.cgroups import Cgroup

GpuCallback = Callable[[dict[str, Any]], None]
NO_GPU_STATUS = "no GPU source: GPU rules skipped"


@dataclass(frozen=True)
class GpuProcess:
    """One process on one GPU: ``util`` in percent (None if the driver cannot tell)."""

    gpu_index: int
    pid: int
    util: float | None
    memory_bytes: int | None


class GpuSource(Protocol):
    name: str

    def available(self) -> bool: ...

    def processes(self) -> list[GpuProcess]: ...


class NvmlGpuSource:
    """GPU processes from NVML. ``available()`` is False (see ``reason``) without a driver.

    Per-process utilisation comes from ``nvmlDeviceGetProcessUtilization`` (SM percent,
    highest sample since the last call); where the driver does not support it and one
    process is alone on a device, the device's utilisation is used instead.
    """

    name = "nvml"

    def __init__(self) -> None:
        self._nvml: Any = None
        self._lock = threading.Lock()
        self._handles: list[Any] = []
        self._last_seen: dict[int, int] = {}
        self.reason: str | None = None
        self._tried = False

    def available(self) -> bool:
        with self._lock:
            if not self._tried:
                self._tried = True
                self._init()
            return self._nvml is not None

    def _init(self) -> None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError as exc:
            self.reason = f"nvidia-ml-py not installed: {exc}"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML unavailable: {exc}"
            return
        if not self._handles:
            self.reason = "NVML found no GPUs"
            pynvml.nvmlShutdown()
            return
        self._nvml = pynvml

    def processes(self) -> list[GpuProcess]:
        if not self.available():
            return []
        nvml = self._nvml
        found: list[GpuProcess] = []
        for index, handle in enumerate(self._handles):
            try:
                procs = list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
            except nvml.NVMLError:
                continue
            with _suppress_nvml(nvml):
                procs += [
                    p for p in nvml.nvmlDeviceGetGraphicsRunningProcesses(handle) if p.pid not in {q.pid for q in procs}
                ]
            utils = self._process_utils(index, handle)
            device_util = None
            if len({p.pid for p in procs}) == 1 and not utils:
                with _suppress_nvml(nvml):
                    device_util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            for p in procs:
                memory = p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None
                found.append(GpuProcess(index, int(p.pid), utils.get(p.pid, device_util), memory))
        return found

    def _process_utils(self, index: int, handle: Any) -> dict[int, float]:
        nvml = self._nvml
        utils: dict[int, float] = {}
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(handle, self._last_seen.get(index, 0))
        except nvml.NVMLError:  # NotFound: no samples since last time; NotSupported
            return utils
        for s in samples:
            utils[s.pid] = max(utils.get(s.pid, 0.0), float(s.smUtil))
            self._last_seen[index] = max(self._last_seen.get(index, 0), int(s.timeStamp))
        return utils

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                with _suppress_nvml(self._nvml):
                    self._nvml.nvmlShutdown()
                self._nvml = None


class _suppress_nvml:
    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, self.nvml.NVMLError)


class SimulatedGpuSource:
    """GPU processes declared by tests: ``add(pid, util, memory_bytes)`` for a real pid;
    a process that has exited drops out on its own."""

    name = "simulated"

    def __init__(self, gpus: int = 1) -> None:
        self.gpus = gpus
        self._lock = threading.Lock()
        self._procs: dict[tuple[int, int], GpuProcess] = {}

    def available(self) -> bool:
        return True

    def add(self, pid: int, util: float, memory_bytes: int, gpu_index: int = 0) -> None:
        if not 0 <= gpu_index < self.gpus:
            raise ValueError(f"gpu_index {gpu_index} out of range (simulating {self.gpus} GPUs)")
        with self._lock:
            self._procs[(gpu_index, pid)] = GpuProcess(gpu_index, pid, float(util), int(memory_bytes))

    def remove(self, pid: int) -> None:
        with self._lock:
            for key in [k for k in self._procs if k[1] == pid]:
                del self._procs[key]

    def processes(self) -> list[GpuProcess]:
        with self._lock:
            for key in [k for k in self._procs if not os.path.exists(f"/proc/{k[1]}")]:
                del self._procs[key]
            return list(self._procs.values())


def detect_gpu_source(simulated: SimulatedGpuSource | None = None) -> GpuSource | None:
    """NVML where a driver answers, else ``simulated`` (if given), else None."""
    nvml = NvmlGpuSource()
    if nvml.available():
        return nvml
    return simulated


@dataclass(eq=False)
class GpuRegistration:
    match: str
    callback: GpuCallback


class GpuSampler:
    """Maps GPU processes to sandboxes by cgroup and emits ``gpu`` event data.

    ``register(cgroup, callback)``; :meth:`sample` delivers one event per GPU process
    found in a registered sandbox and returns them as ``(registration, data)`` pairs.
    """

    def __init__(self, source: GpuSource | None) -> None:
        self.source = source if source is not None and source.available() else None
        self._unavailable_reason = (
            getattr(source, "reason", None) if source is not None and self.source is None else None
        )
        self._lock = threading.Lock()
        self._regs: list[GpuRegistration] = []

    def register(self, cgroup: Cgroup | str, callback: GpuCallback) -> GpuRegistration:
        from rollcage.monitor.exec_sensor import cgroup_match_for

        match = cgroup if isinstance(cgroup, str) else cgroup_match_for(cgroup)
        reg = GpuRegistration(match.rstrip("/") or "/", callback)
        with self._lock:
            self._regs.append(reg)
        return reg

    def unregister(self, registration: GpuRegistration) -> None:
        with self._lock:
            if registration in self._regs:
                self._regs.remove(registration)

    def status(self) -> str:
        if self.source is None:
            return NO_GPU_STATUS + (f" ({self._unavailable_reason})" if self._unavailable_reason else "")
        return f"GPU source: {self.source.name}"

    @property
    def active(self) -> bool:
        return self.source is not None

    def sample(self) -> list[tuple[GpuRegistration, dict[str, Any]]]:
        if self.source is None:
            return []
        with self._lock:
            regs = list(self._regs)
        if not regs:
            return []
        delivered = []
        for proc in self.source.processes():
            paths = proc_info.cgroup_paths(proc.pid)
            if not paths:
                continue
            reg = next((r for r in regs if proc_info.in_cgroup(paths, r.match)), None)
            if reg is None:
                continue
            argv = proc_info.argv(proc.pid)
            data = {
                "gpu_index": proc.gpu_index,
                "util": proc.util,
                "memory_bytes": proc.memory_bytes,
                "pid": proc.pid,
                "cmdline": " ".join(argv) if argv else None,
                "source": self.source.name,
            }
            reg.callback(data)
            delivered.append((reg, data))
        return delivered
