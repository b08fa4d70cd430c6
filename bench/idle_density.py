"""Idle density: how many idle sandboxes fit on a host, and what one really costs.

``--n`` sandboxes are created one after another and all kept open, each idle with its
default bash session. Then, per sandbox:
(a) Pss: sum over every sandbox process of ``Pss`` from ``/proc/<pid>/smaps_rollup``,
    divided by n. Shared pages (bash, libc) are split among the processes sharing them,
    so this is the honest marginal user-space cost;
(b) Rss: the same with ``Rss`` (counts every shared page in full, so it overstates);
(c) the mean of the sandboxes' memory cgroup usage (charged pages incl. kernel memory);
(d) the drop of host ``MemAvailable`` divided by n: everything, kernel objects (mounts,
    namespaces, page tables) and the supervisor's own per-sandbox state included.
Also: total creation time, and whether every sandbox still answers ``echo ok`` after the
readings are taken. All sandboxes are closed at the end, even on error.
"""

from __future__ import annotations

import argparse
import time

from _common import CONFIG, MB, NullSink, config_summary, mem_available_bytes, report

from rollcage import Sandbox

TARGET_N = 200
TARGET_PSS_MB = 10.0


def rollup_kb(pid: int) -> dict[str, int]:
    """Pss and Rss in kB of one process (zeros if it is gone)."""
    values = {"Pss": 0, "Rss": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=TARGET_N)
    args = parser.parse_args()
    n: int = args.n
    sink = NullSink()
    sandboxes: list[Sandbox] = []
    available_before = mem_available_bytes()
    try:
        start = time.perf_counter()
        for _ in range(n):
            sandboxes.append(Sandbox(CONFIG, events=sink))
        creation_s = time.perf_counter() - start
        time.sleep(1.0)  # let the kernel settle (deferred frees, per-cpu caches)
        available_after = mem_available_bytes()
        pids = [pid for sb in sandboxes for pid in sb.pids()]
        pss_kb = rss_kb = 0
        for pid in pids:
            rollup = rollup_kb(pid)
            pss_kb += rollup["Pss"]
            rss_kb += rollup["Rss"]
        cgroup_bytes = [sb.cgroup.memory_bytes() or 0 for sb in sandboxes]
        answering = sum(sb.run("echo ok", timeout=10).output == "ok\n" for sb in sandboxes)
    finally:
        for sb in sandboxes:
            sb.close()
    pss_mb = pss_kb * 1024 / n / MB
    report(
        "idle_density",
        {
            "config": config_summary(),
            "n": n,
            "processes_per_sandbox": round(len(pids) / n, 2),
            "creation_total_s": round(creation_s, 3),
            "creation_per_sandbox_ms": round(creation_s / n * 1000, 3),
            "per_sandbox_mb": {
                "pss": round(pss_mb, 3),
                "rss": round(rss_kb * 1024 / n / MB, 3),
                "cgroup_memory_mean": round(sum(cgroup_bytes) / n / MB, 3),
                "mem_available_drop": round((available_before - available_after) / n / MB, 3),
            },
            "units": "MB = 10^6 bytes",
            "all_answer_echo_ok": answering == n,
            "answering": answering,
            "target": f"{TARGET_N} sandboxes up at once, Pss per sandbox <= {TARGET_PSS_MB:g} MB",
            "meets_target": n >= TARGET_N and answering == n and pss_mb <= TARGET_PSS_MB,
        },
    )


if __name__ == "__main__":
    main()
