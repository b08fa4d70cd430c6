"""Exec sensor overhead: how much a fork-heavy benign workload in a sandbox slows down, and
how much CPU it costs in total, when the netlink exec monitor watches the sandbox.

Workloads (run inside one sandbox, alternating monitor off / on, ``--reps`` times each):

- ``build``: ``make -j2`` of a small C project (``--files`` translation units + a link),
  from clean — gcc, cc1, as, collect2, ld, rm: the workload the target is written for;
- ``true_loop``: ``--n`` runs of ``/bin/true`` from a shell loop — the worst case: nothing but
  fork/exec/exit, each process about a millisecond long.

"off" means no process-events listener exists at all; "on" means a fresh
:class:`ExecMonitor` with this sandbox registered (with a StepTracker, and a callback that
builds the Event the sandbox would emit into a no-op sink). Reported per workload: median
wall time and median sandbox CPU (cgroup cpuacct) off and on, the monitor thread's own CPU
time per run, ``overhead_wall_pct`` (median wall on vs off) and ``overhead_cpu_pct``
((sandbox CPU + monitor thread CPU) on vs sandbox CPU off) — the figure the ≤ 2 % target
is about.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import CONFIG, NullSink, config_summary, report

from rollcage import Sandbox
from rollcage.events import Attribution, Event
from rollcage.monitor.exec_sensor import ExecMonitor, StepTracker
from rollcage.monitor.resources import ResourceSampler

TARGET_PCT = 2.0


def write_project(sb: Sandbox, files: int) -> None:
    for i in range(files):
        body = "\n".join(
            f"static int f{j}(int x) {{ return x * {j} + (x >> {j % 7}); }}" for j in range(40)
        )  # fmt: skip
        calls = " + ".join(f"f{j}(x)" for j in range(40))
        sb.write_file(f"/tmp/proj/u{i}.c", f"{body}\nint unit{i}(int x) {{ return {calls}; }}\n")
    decls = "".join(f"int unit{i}(int);" for i in range(files))
    total = " + ".join(f"unit{i}(argc)" for i in range(files))
    sb.write_file("/tmp/proj/main.c", f"{decls}\nint main(int argc, char **argv) {{ return ({total}) & 1; }}\n")
    objs = " ".join(f"u{i}.o" for i in range(files)) + " main.o"
    sb.write_file("/tmp/proj/Makefile", f"app: {objs}\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O1 -c $< -o $@\n")


WORKLOADS = {
    "build": "rm -f /tmp/proj/*.o /tmp/proj/app && make -s -C /tmp/proj -j2 >/dev/null",
    "true_loop": "for i in $(seq {n}); do /bin/true; done",
}


def measure(sb: Sandbox, command: str, monitored: bool) -> dict[str, Any]:
    sampler = ResourceSampler(sb.cgroup)
    monitor = registration = None
    emitted = [0]
    if monitored:
        monitor = ExecMonitor()
        tracker = StepTracker(current_step=1)
        for session in sb._sessions.values():
            tracker.add_shell(session.shell_pid)
        sink = NullSink()

        def on_exec(data: dict[str, Any]) -> None:
            emitted[0] += 1
            sink.emit(Event("exec", sb.id, Attribution(step=data.pop("step", None)), data))

        registration = monitor.register(sb.cgroup, on_exec, tracker=tracker)
        monitor.flush(1.0)
        cpu_before = monitor.stats()["thread_cpu_s"]
    usage_before = sampler.cpu_usage_ns()
    start = time.perf_counter()
    result = sb.run(command, timeout=600)
    wall = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(f"workload failed: {result}")
    usage_after = sampler.cpu_usage_ns()
    out: dict[str, Any] = {"wall_s": wall, "sandbox_cpu_s": (usage_after - usage_before) / 1e9}
    if monitor is not None and registration is not None:
        monitor.flush(5.0)
        stats = monitor.stats()
        out.update(
            monitor_cpu_s=stats["thread_cpu_s"] - cpu_before,
            exec_events=emitted[0],
            partial=stats["partial"],
            overruns=stats["overruns"],
        )
        monitor.unregister(registration)
        monitor.close()
    return out


def run_workload(sb: Sandbox, command: str, reps: int) -> dict[str, Any]:
    measure(sb, command, False)  # warm caches (page cache, gcc)
    measure(sb, command, True)
    off, on = [], []
    for _ in range(reps):
        off.append(measure(sb, command, False))
        on.append(measure(sb, command, True))

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    wall_off, wall_on = med(off, "wall_s"), med(on, "wall_s")
    cpu_off, cpu_on, mon_cpu = med(off, "sandbox_cpu_s"), med(on, "sandbox_cpu_s"), med(on, "monitor_cpu_s")
    return {
        "command": command,
        "reps": reps,
        "exec_events_per_run": med(on, "exec_events"),
        "off": {"wall_s": round(wall_off, 4), "sandbox_cpu_s": round(cpu_off, 4)},
        "on": {
            "wall_s": round(wall_on, 4),
            "sandbox_cpu_s": round(cpu_on, 4),
            "monitor_thread_cpu_s": round(mon_cpu, 4),
            "monitor_us_per_exec": round(mon_cpu / max(1, med(on, "exec_events")) * 1e6, 1),
        },
        "overhead_wall_pct": round((wall_on - wall_off) / wall_off * 100, 2),
        "overhead_cpu_pct": round((cpu_on + mon_cpu - cpu_off) / cpu_off * 100, 2),
        "monitor_cpu_pct_of_workload_cpu": round(mon_cpu / cpu_off * 100, 2),
        "partial_events_total": sum(r["partial"] for r in on),
        "overruns_total": sum(r["overruns"] for r in on),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="/bin/true runs in true_loop")
    parser.add_argument("--files", type=int, default=24, help="C files in the build workload")
    args = parser.parse_args()
    results = {}
    with Sandbox(CONFIG, events=NullSink()) as sb:
        write_project(sb, args.files)
        for name, template in WORKLOADS.items():
            results[name] = run_workload(sb, template.format(n=args.n), args.reps)
    build = results["build"]
    report(
        "exec_overhead",
        {
            "config": config_summary(),
            "workloads": results,
            "target": f"exec sensor CPU overhead on a build <= {TARGET_PCT:g} %",
            "meets_target": build["overhead_cpu_pct"] <= TARGET_PCT,
        },
    )


if __name__ == "__main__":
    main()
