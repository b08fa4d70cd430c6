"""Per-command overhead: how much slower a trivial command is through ``Sandbox.run``
(fifo round trip to the persistent bash session, marker scan, cgroup read, event emit)
than running it directly on the host.

Measured: ``sb.run("true")`` (bash builtin: pure protocol cost) and ``sb.run("/bin/true")``
(fork+exec inside the sandbox), against host ``subprocess.run(["/bin/true"])`` and
``subprocess.run("true", shell=True)``. Overhead = sandbox ``/bin/true`` p50 minus host
``subprocess.run(["/bin/true"])`` p50. The sandbox runs twice: with a no-op event sink
(the target) and with the default SQLite event store (what users get by default; this
appends the benchmark's command events to the real store).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from typing import Any

from _common import CONFIG, NullSink, config_summary, report, summarize_ms

from rollcage import Sandbox

TARGET_OVERHEAD_MS = 2.0
WARMUP = 20


def timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return summarize_ms(samples)


def checked_run(sandbox: Sandbox, command: str) -> None:
    result = sandbox.run(command)
    if result.exit_code != 0:
        raise RuntimeError(f"{command!r} failed in the sandbox: {result}")


def in_sandbox(n: int, null_sink: bool) -> dict[str, dict[str, float]]:
    with Sandbox(CONFIG, events=NullSink() if null_sink else None) as sandbox:
        return {cmd: timed(lambda cmd=cmd: checked_run(sandbox, cmd), n) for cmd in ("true", "/bin/true")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    host = {
        'subprocess.run(["/bin/true"])': timed(lambda: subprocess.run(["/bin/true"], check=True), args.n),
        'subprocess.run("true", shell=True)': timed(lambda: subprocess.run("true", shell=True, check=True), args.n),
    }
    null = in_sandbox(args.n, null_sink=True)
    store = in_sandbox(args.n, null_sink=False)
    host_p50 = host['subprocess.run(["/bin/true"])']["p50"]
    overhead = round(null["/bin/true"]["p50"] - host_p50, 4)
    overhead_store = round(store["/bin/true"]["p50"] - host_p50, 4)
    report(
        "command_overhead",
        {
            "config": config_summary(),
            "n": args.n,
            "warmup": WARMUP,
            "host_ms": host,
            "sandbox_null_sink_ms": null,
            "sandbox_default_store_ms": store,
            "overhead_p50_ms": overhead,
            "overhead_p50_ms_default_store": overhead_store,
            "target": f"overhead p50 (sandbox vs host /bin/true, null sink) <= {TARGET_OVERHEAD_MS:g} ms",
            "meets_target": overhead <= TARGET_OVERHEAD_MS,
            "meets_target_default_store": overhead_store <= TARGET_OVERHEAD_MS,
        },
    )


if __name__ == "__main__":
    main()
