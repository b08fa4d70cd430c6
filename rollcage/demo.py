"""``rollcage demo``: a short live tour of what a sandbox holds back.

Each step runs a real command in a real sandbox and checks the outcome, so the demo
doubles as a smoke test of the host. (A later issue turns this into the full incident
replay with a simulated mining pool and SSH server.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from rollcage.config import SandboxConfig
from rollcage.events.defaults import default_store
from rollcage.sandbox import Sandbox
from rollcage.sandbox.result import CommandResult


@dataclass
class Check:
    title: str
    command: str
    passed: Callable[[CommandResult], bool]
    timeout: float = 10.0


CHECKS = [
    Check(
        "runs as root inside, no capabilities",
        "grep CapEff /proc/self/status",
        lambda r: r.output.split()[-1] == "0000000000000000",
    ),
    Check("sees only its own processes", "ls /proc | grep -c '^[0-9]'", lambda r: int(r.output) < 10),
    Check("host root is read-only", "touch /usr/rollcage-test", lambda r: r.exit_code != 0),
    Check("no host secrets: /root is empty", "ls -A /root | wc -l", lambda r: r.output.strip() == "0"),
    Check(
        "network: loopback only",
        "ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1",
        lambda r: r.output.split() == ["lo"],
    ),
    Check(
        "cannot reach an outside address (TEST-NET-3)",
        "timeout 3 bash -c 'echo > /dev/tcp/203.0.113.10/80' 2>&1",
        lambda r: r.exit_code != 0,
    ),
    Check("cannot change its network", "ip link set lo down 2>&1", lambda r: r.exit_code != 0),
    Check(
        "fork bomb is contained by the pids limit",
        "bash -c 'for i in $(seq 200); do sleep 1 & done' 2>&1 | grep -c 'fork' ; true",
        lambda r: int(r.output.split()[0] or 0) > 0,
    ),
    Check(
        "a runaway command times out, the session lives on", "while :; do :; done", lambda r: r.timed_out, timeout=1.0
    ),
    Check(
        "state persists across commands",
        "cd /tmp && export GREETING=hello && echo $GREETING",
        lambda r: r.output == "hello\n",
    ),
]


def run_demo(console: Console | None = None) -> int:
    console = console or Console()
    config = SandboxConfig(memory="256m", cpus=0.5, pids=64)
    table = Table(title="rollcage sandbox demo")
    table.add_column("check")
    table.add_column("result")
    table.add_column("ms", justify="right")
    started = time.perf_counter()
    failures = 0
    with Sandbox(config, run_id="demo") as sandbox:
        cold_ms = (time.perf_counter() - started) * 1000
        console.print(f"sandbox [bold]{sandbox.id}[/] started in {cold_ms:.1f} ms (uid {sandbox.uid} on the host)")
        for step, check in enumerate(CHECKS, start=1):
            result = sandbox.run(check.command, timeout=check.timeout, step=step)
            try:
                ok = check.passed(result)
            except (ValueError, IndexError):
                ok = False
            failures += not ok
            table.add_row(
                check.title,
                "[green]held[/]" if ok else f"[red]FAILED[/] {result.output[:60]!r}",
                f"{result.duration_s * 1000:.1f}",
            )
        sandbox_id = sandbox.id
    console.print(table)
    events = default_store().query(sandbox_id=sandbox_id)
    console.print(f"{len(events)} events recorded for {sandbox_id} in {default_store().path}")
    return 1 if failures else 0
