"""Helpers shared by the benchmarks: percentiles, machine description, a no-op event
sink and JSON reporting. Standard library only (plus rollcage)."""

from __future__ import annotations

import json
import math
import os
import platform
from typing import Any

from rollcage import SandboxConfig
from rollcage.events import Event

# The configuration every benchmark measures: a typical agent sandbox.
CONFIG = SandboxConfig(memory="512m", cpus=1.0, pids=256)
MB = 1_000_000  # memory figures are reported in MB = 10^6 bytes, as the targets are written


class NullSink:
    """An event sink that drops everything, so the SQLite store does not distort timings."""

    def emit(self, event: Event) -> None:
        pass


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/mean/min/max of durations given in seconds, reported in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    stats = {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "mean": sum(ms) / len(ms),
        "min": min(ms),
        "max": max(ms),
    }
    return {k: round(v, 4) for k, v in stats.items()}


def _meminfo_kb(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def mem_available_bytes() -> int:
    return _meminfo_kb("MemAvailable") * 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "mem_total_gib": round(_meminfo_kb("MemTotal") / 1024**2, 2),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def config_summary() -> dict[str, Any]:
    return {"memory": CONFIG.memory, "cpus": CONFIG.cpus, "pids": CONFIG.pids}


def report(benchmark: str, result: dict[str, Any]) -> None:
    """Print the one JSON object a benchmark produces."""
    print(json.dumps({"benchmark": benchmark, "machine": machine(), **result}, indent=2))
