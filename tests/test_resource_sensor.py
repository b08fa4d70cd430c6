"""Resource sensor: CPU, memory and pids per sandbox from its cgroup, and GPU processes
mapped to the sandbox that owns them."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest

from rollcage import Sandbox
from rollcage.monitor.gpu import (
    NO_GPU_STATUS,
    GpuProcess,
    GpuSampler,
    NvmlGpuSource,
    SimulatedGpuSource,
    detect_gpu_source,
)
from rollcage.monitor.resources import CgroupPaths, ResourceMonitor, ResourceSampler


def test_busy_loop_shows_near_one_core(sandbox: Sandbox) -> None:
    sampler = ResourceSampler(sandbox.cgroup)
    idle = sampler.sample()
    assert idle["pids"] is not None and idle["memory_bytes"] is not None
    sandbox.run("sh -c 'while :; do :; done' >/dev/null 2>&1 &")
    sampler.sample()
    time.sleep(1.0)
    busy = sampler.sample()
    assert busy["cpu_pct"] > 50, busy  # cpus=1.0: at most ~100
    assert busy["cpu_pct"] < 130, busy


def test_memory_and_pids_rise(sandbox: Sandbox) -> None:
    sampler = ResourceSampler(CgroupPaths.of(sandbox.cgroup))
    before = sampler.sample()
    sandbox.run(
        'python3 -c \'import time; b = bytearray(100 * 1024 * 1024); b[::4096] = b"x" * len(b[::4096]); '
        "time.sleep(30)' >/dev/null 2>&1 & sleep 30 & sleep 30 &"
    )
    deadline = time.monotonic() + 10
    after = sampler.sample()
    while after["memory_bytes"] - before["memory_bytes"] < 80 * 1024 * 1024 and time.monotonic() < deadline:
        time.sleep(0.1)
        after = sampler.sample()
    assert after["memory_bytes"] - before["memory_bytes"] >= 80 * 1024 * 1024, (before, after)
    assert after["pids"] >= before["pids"] + 3


def test_resource_monitor_emits_resource_events_every_interval(sandbox: Sandbox) -> None:
    events: list[dict[str, Any]] = []
    monitor = ResourceMonitor(interval=0.1)
    try:
        monitor.add(sandbox.id, ResourceSampler(sandbox.cgroup), events.append)
        time.sleep(0.55)
    finally:
        monitor.close()
    assert 3 <= len(events) <= 7, events
    assert all(set(e) == {"cpu_pct", "memory_bytes", "pids"} for e in events)
    assert all(e["pids"] >= 1 for e in events)


def test_sampler_of_a_removed_cgroup_reports_none(sandbox: Sandbox) -> None:
    sampler = ResourceSampler(sandbox.cgroup)
    sandbox.close()
    assert sampler.sample() == {"cpu_pct": None, "memory_bytes": None, "pids": None}


def test_simulated_gpu_process_maps_to_its_sandbox(sandbox: Sandbox) -> None:
    sandbox.run("nohup sleep 30 >/dev/null 2>&1 &")
    pid = _find(sandbox, "sleep 30")
    host = subprocess.Popen(["sleep", "30"])
    try:
        source = SimulatedGpuSource(gpus=2)
        source.add(pid, util=97, memory_bytes=20 * 1024**3, gpu_index=1)
        source.add(host.pid, util=50, memory_bytes=1024**3)  # not in any sandbox
        sampler = GpuSampler(source)
        assert sampler.status() == "GPU source: simulated" and sampler.active
        events: list[dict[str, Any]] = []
        sampler.register(sandbox.cgroup, events.append)
        delivered = sampler.sample()
        assert events == [
            {
                "gpu_index": 1,
                "util": 97.0,
                "memory_bytes": 20 * 1024**3,
                "pid": pid,
                "cmdline": "sleep 30",
                "source": "simulated",
            }
        ]
        assert len(delivered) == 1
        sandbox.run(f"kill {_ns_pid(pid)}")
        _wait_gone(pid)
        assert [p.pid for p in source.processes()] == [host.pid]
        events.clear()
        assert sampler.sample() == [] and events == []
    finally:
        host.kill()
        host.wait()


def test_gpu_events_through_the_resource_monitor(sandbox: Sandbox) -> None:
    sandbox.run("nohup sleep 30 >/dev/null 2>&1 &")
    pid = _find(sandbox, "sleep 30")
    source = SimulatedGpuSource()
    source.add(pid, util=99, memory_bytes=1024**3)
    gpu = GpuSampler(source)
    events: list[dict[str, Any]] = []
    gpu.register(sandbox.cgroup, events.append)
    monitor = ResourceMonitor(interval=0.05, gpu=gpu)
    try:
        monitor.add(sandbox.id, ResourceSampler(sandbox.cgroup), lambda _: None)
        time.sleep(0.3)
    finally:
        monitor.close()
    assert events and all(e["pid"] == pid and e["source"] == "simulated" for e in events)


def test_no_gpu_source_says_gpu_rules_are_skipped() -> None:
    assert GpuSampler(None).status() == NO_GPU_STATUS
    assert GpuSampler(None).sample() == [] and not GpuSampler(None).active
    nvml = NvmlGpuSource()
    if nvml.available():
        pytest.skip("this host has an NVIDIA driver")
    assert nvml.reason and nvml.processes() == []
    sampler = GpuSampler(nvml)
    assert sampler.status().startswith(NO_GPU_STATUS) and nvml.reason in sampler.status()
    assert detect_gpu_source() is None
    simulated = SimulatedGpuSource()
    assert detect_gpu_source(simulated) is simulated


def test_simulated_source_validates_gpu_index() -> None:
    source = SimulatedGpuSource(gpus=1)
    with pytest.raises(ValueError):
        source.add(os.getpid(), util=1, memory_bytes=1, gpu_index=3)
    source.add(os.getpid(), util=1, memory_bytes=1)
    assert source.processes() == [GpuProcess(0, os.getpid(), 1.0, 1)]


def _find(sandbox: Sandbox, cmdline: str, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in sandbox.pids():
            if _cmdline(pid) == cmdline:
                return pid
        time.sleep(0.01)
    raise AssertionError(f"no {cmdline!r} in the sandbox")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ns_pid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("NSpid:")).split()[-1])


def _wait_gone(pid: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
