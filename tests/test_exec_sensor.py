"""Exec sensor: every process a sandbox executes is reported, with the step that started
its tree — short-lived, scripted, backgrounded and renamed ones included — and nothing
from outside the sandbox."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rollcage import Sandbox, SandboxConfig
from rollcage.monitor.exec_sensor import (
    ExecMonitor,
    ExecMonitorUnavailable,
    PollingExecMonitor,
    StepTracker,
)

EXEC_FIELDS = {"pid", "ppid", "exe", "exe_sha256", "argv", "cmdline", "name", "cwd", "pcmdline", "pname", "uid"}


@pytest.fixture(scope="module")
def monitor() -> Iterator[ExecMonitor]:
    try:
        mon = ExecMonitor.shared()
    except ExecMonitorUnavailable as exc:
        pytest.skip(str(exc))
    yield mon
    mon.close()


class Watched:
    """A sandbox with an exec registration and a step tracker, driven the way the sandbox
    integration will drive them: set the step, run the command, flush."""

    def __init__(self, sandbox: Sandbox, monitor: Any) -> None:
        self.sandbox = sandbox
        self.monitor = monitor
        self.events: list[dict[str, Any]] = []
        self.tracker = StepTracker()
        for session in sandbox._sessions.values():
            self.tracker.add_shell(session.shell_pid)
        monitor.flush(2.0)  # events of the sandbox's own start-up (its session shell) are not the test's
        self.registration = monitor.register(sandbox.cgroup, self.events.append, tracker=self.tracker)

    def run(self, command: str, step: int) -> None:
        self.tracker.current_step = step
        result = self.sandbox.run(command, step=step)
        assert result.exit_code == 0, result
        assert self.monitor.flush(2.0)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["name"] == name or (e["argv"] and e["argv"][0].endswith("/" + name))]

    def close(self) -> None:
        self.monitor.unregister(self.registration)


@pytest.fixture
def watched(sandbox: Sandbox, monitor: ExecMonitor) -> Iterator[Watched]:
    w = Watched(sandbox, monitor)
    yield w
    w.close()


def test_short_lived_commands_are_all_reported(watched: Watched) -> None:
    watched.run("for i in {1..20}; do /bin/true; done", step=1)
    shell = watched.sandbox._sessions["default"].shell_pid
    trues = [e for e in watched.events if e["ppid"] == shell]
    assert len(trues) == 20, watched.events  # every exec is seen, even if /proc was gone
    assert all(e["step"] == 1 for e in trues)
    full = [e for e in trues if not e["partial"]]
    assert full, "no /bin/true was read in full"
    for e in full:
        assert e.keys() >= EXEC_FIELDS
        assert e["exe"].endswith("/true") and e["argv"] == ["/bin/true"] and e["name"] == "true"
        assert e["pname"] == "bash" and "bash" in e["pcmdline"]
        assert e["uid"] == watched.sandbox.uid and len(e["exe_sha256"]) == 64
    assert watched.monitor.stats()["overruns"] == 0


def test_process_started_from_a_script_file(watched: Watched) -> None:
    watched.sandbox.write_file("/tmp/job.sh", "#!/bin/sh\ncd /tmp\nsleep 0.2\necho hi | cat >/dev/null\n", mode=0o755)
    watched.run("/tmp/job.sh", step=4)
    script = [e for e in watched.events if "/tmp/job.sh" in e["argv"]]
    assert len(script) == 1, watched.events
    sleeps = watched.named("sleep")
    assert len(sleeps) == 1
    assert sleeps[0]["ppid"] == script[0]["pid"] and "/tmp/job.sh" in sleeps[0]["pcmdline"]
    assert sleeps[0]["argv"] == ["sleep", "0.2"] and sleeps[0]["cwd"] == "/tmp"
    assert {e["step"] for e in watched.events} == {4}


def test_background_job_keeps_the_step_that_started_it(watched: Watched) -> None:
    watched.run(
        "nohup sleep 30 >/dev/null 2>&1 & "
        "nohup sh -c 'while [ ! -e /tmp/go ]; do sleep 0.05; done; exec /bin/sleep 0.31' >/dev/null 2>&1 &",
        step=1,
    )
    watched.run("/bin/sleep 0.12", step=2)
    watched.run("touch /tmp/go && /bin/sleep 0.13", step=3)
    deadline = time.monotonic() + 5
    while not [e for e in watched.events if e["argv"] == ["/bin/sleep", "0.31"]] and time.monotonic() < deadline:
        watched.monitor.flush(1.0)
        time.sleep(0.05)
    echo = [e for e in watched.events if e["argv"] == ["/bin/sleep", "0.31"]]
    assert len(echo) == 1 and echo[0]["name"] == "sleep"
    assert echo[0]["step"] == 1, "a step-1 background job's exec at step 3 belongs to step 1"
    # nohup execs sleep at once, so its own event may already read sleep's argv: one or two events
    assert {e["step"] for e in watched.events if e["argv"] == ["sleep", "30"]} == {1}
    assert [e["step"] for e in watched.events if e["argv"] == ["/bin/sleep", "0.12"]] == [2]
    assert [e["step"] for e in watched.events if e["argv"] == ["/bin/sleep", "0.13"]] == [3]
    late_sleeps = [e for e in watched.events if e["argv"] == ["sleep", "0.05"]]
    assert late_sleeps and {e["step"] for e in late_sleeps} == {1}


def test_renamed_binary_shows_its_real_path_and_hash(watched: Watched) -> None:
    watched.run("cp /bin/sleep /tmp/kworker; /tmp/kworker 1", step=2)
    sleep_sha = hashlib.sha256(watched.sandbox.read_bytes("/bin/sleep")).hexdigest()
    kworker = [e for e in watched.events if e["argv"][:1] == ["/tmp/kworker"]]
    assert len(kworker) == 1, watched.events
    event = kworker[0]
    assert event["exe"] == "/tmp/kworker" and event["name"] == "kworker" and not event["partial"]
    assert event["exe_sha256"] == sleep_sha
    assert event["cmdline"] == "/tmp/kworker 1" and event["step"] == 2


def test_processes_outside_the_sandbox_are_not_reported(watched: Watched, monitor: ExecMonitor) -> None:
    other_events: list[dict[str, Any]] = []
    with Sandbox(SandboxConfig(memory="256m", cpus=0.5, pids=64)) as other:
        reg = monitor.register(other.cgroup, other_events.append)
        try:
            host = [subprocess.Popen(["/bin/sleep", "0.1"]) for _ in range(3)]
            host_pids = {p.pid for p in host}
            other.run("/bin/sleep 0.21")
            watched.run("/bin/sleep 0.22", step=1)
            for p in host:
                p.wait()
            assert monitor.flush(2.0)
        finally:
            monitor.unregister(reg)
    seen = {e["pid"] for e in watched.events + other_events}
    assert not seen & host_pids
    assert [e["argv"] for e in watched.events] == [["/bin/sleep", "0.22"]]
    assert [e["argv"] for e in other_events] == [["/bin/sleep", "0.21"]]


def test_flush_is_bounded_and_stats_are_reported(monitor: ExecMonitor) -> None:
    start = time.monotonic()
    assert monitor.flush(1.0)
    assert time.monotonic() - start < 1.0
    stats = monitor.stats()
    assert stats["source"] == "netlink" and stats["running"]
    assert stats["rcvbuf_bytes"] >= 8 * 1024 * 1024
    assert {"events", "execs", "forks", "exits", "overruns", "partial", "thread_cpu_s"} <= stats.keys()


def test_kernel_queue_overrun_is_counted_not_silent() -> None:
    """A monitor with a tiny socket buffer and a stalled callback loses events: the loss
    shows in stats() and reaches on_lost."""
    try:
        mon = ExecMonitor(rcvbuf=4096)
    except ExecMonitorUnavailable as exc:
        pytest.skip(str(exc))
    stall = threading.Event()
    lost: list[int] = []

    def slow(_: dict[str, Any]) -> None:
        stall.wait(2)

    reg = mon.register("/", slow, on_lost=lost.append)  # every process on the host
    try:
        subprocess.run(["/bin/true"])
        for _ in range(200):
            subprocess.run(["/bin/true"])
        stall.set()
        mon.flush(5.0)
        assert mon.stats()["overruns"] >= 1
        assert lost and lost[-1] >= 1
    finally:
        stall.set()
        mon.unregister(reg)
        mon.close()


def test_polling_fallback_reports_new_processes_with_steps(sandbox: Sandbox) -> None:
    poller = PollingExecMonitor(interval=0.02)
    try:
        w = Watched(sandbox, poller)
        w.run("sleep 1 & nohup sleep 2 >/dev/null 2>&1 &", step=7)
        sleeps = w.named("sleep")
        assert sorted(e["argv"][1] for e in sleeps) == ["1", "2"]
        assert {e["step"] for e in sleeps} == {7}
        assert poller.stats()["source"] == "poll"
        w.close()
    finally:
        poller.close()


def test_step_tracker_uses_the_step_in_force_when_the_process_was_forked() -> None:
    tracker = StepTracker()
    tracker.add_shell(100)
    t0 = time.monotonic_ns()
    tracker.set_step(1, ts_ns=t0)
    tracker.set_step(2, ts_ns=t0 + 1000)
    tracker.on_fork(100, 200, ts_ns=t0 + 500)  # forked during step 1, event read during step 2
    tracker.on_fork(200, 201, ts_ns=t0 + 5000)  # its child inherits step 1
    tracker.on_fork(100, 300, ts_ns=t0 + 2000)
    assert tracker.step_of(200) == 1 and tracker.step_of(201) == 1 and tracker.step_of(300) == 2
    assert tracker.on_exec(201, 200) == 1
    tracker.on_exit(201)
    assert tracker.step_of(201) == 2  # unknown: the current step
    assert tracker.on_exec(400, 201, ts_ns=t0 + 10) == 1  # parent unknown: step at exec time
