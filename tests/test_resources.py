"""Resource limits hold: memory, processes, CPU, timeouts that kill whole trees."""

from __future__ import annotations

import subprocess
import time

from rollcage import Sandbox, SandboxConfig


def test_oom_kill_stays_inside_the_sandbox() -> None:
    with Sandbox(SandboxConfig(memory="64m")) as sb:
        r = sb.run("python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'", timeout=60)
        assert r.exit_code == 137, r
        assert sb.cgroup.oom_kills() >= 1
        assert sb.run("echo survived").output == "survived\n"


def test_fork_bomb_is_contained_and_host_stays_responsive() -> None:
    sb = Sandbox(SandboxConfig(pids=64, cpus=0.5))
    try:
        sb.run("bomb() { bomb | bomb & }; bomb")
        peak = 0
        for _ in range(20):
            peak = max(peak, len(sb.pids()))
            time.sleep(0.05)
        assert 32 < peak <= 64
        assert _pids_limit_hits(sb) > 0
        start = time.monotonic()
        subprocess.run(["true"], check=True)
        assert time.monotonic() - start < 1.0
        # the bomb's survivors may still print "fork: retry" into the same session output
        assert "builtins still answer\n" in sb.run("echo builtins still answer").output
    finally:
        start = time.monotonic()
        sb.close()
        assert time.monotonic() - start < 3.0
    assert sb.cgroup.pids() == []


def _pids_limit_hits(sb: Sandbox) -> int:
    """How often fork() failed on the pids limit (pids.events 'max N')."""
    events = (sb.cgroup.procs_dir / "pids.events").read_text().split()
    return int(events[events.index("max") + 1])


def test_cpu_quota_limits_cpu_time() -> None:
    burn = (
        "python3 -c 'import time\n"
        "end = time.monotonic() + 1.5\n"
        "while time.monotonic() < end: pass\n"
        "print(round(time.process_time(), 2))'"
    )
    with Sandbox(SandboxConfig(cpus=0.25)) as sb:
        cpu_seconds = float(sb.run(burn, timeout=30).output)
    assert cpu_seconds < 0.6, cpu_seconds  # a full core would give ~1.5 s


def test_timeout_kills_the_whole_tree_but_not_earlier_background_jobs(sandbox: Sandbox) -> None:
    sandbox.run("sleep 300 & echo $! > /tmp/earlier")
    r = sandbox.run("sleep 301 & (setsid sleep 302 &); bash -c 'sleep 303'", timeout=0.5)
    assert r.timed_out and r.exit_code == 124
    survivors = sandbox.run("ps -eo args | grep '^sleep' | sort").output.split("\n")
    assert [s for s in survivors if s] == ["sleep 300"]
    assert sandbox.run("kill -0 $(cat /tmp/earlier) && echo alive").output == "alive\n"


def test_timeout_of_a_shell_builtin_loop_keeps_session_state(sandbox: Sandbox) -> None:
    sandbox.run("cd /tmp; export KEEP=yes")
    r = sandbox.run("while :; do :; done", timeout=0.5)
    assert r.timed_out and not r.session_restarted
    assert sandbox.run("echo $PWD $KEEP").output == "/tmp yes\n"


def test_timeout_keeps_output_produced_before_it(sandbox: Sandbox) -> None:
    r = sandbox.run("echo started; sleep 60", timeout=0.5)
    assert r.timed_out and r.output == "started\n"
    assert r.duration_s < 5


def test_default_timeout_comes_from_the_config() -> None:
    with Sandbox(SandboxConfig(timeout=0.5)) as sb:
        r = sb.run("sleep 30")
        assert r.timed_out


def test_sessions_are_independent_while_one_runs_long(sandbox: Sandbox) -> None:
    sandbox.run("sleep 300 &", session="server")
    r = sandbox.run("sleep 60", session="worker", timeout=0.3)
    assert r.timed_out
    assert "sleep 300" in sandbox.run("ps -eo args").output
