"""Crashes and failures leave nothing behind: SIGKILLed supervisors, failed starts, gc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollcage import HostError, Sandbox, SandboxConfig
from rollcage.sandbox.cgroups import Cgroup, existing_cgroup_names
from rollcage.sandbox.gc import collect
from rollcage.sandbox.paths import sandboxes_dir, workspaces_dir
from rollcage.sandbox.uids import leased_uids

SUPERVISOR = """
import json, sys
from rollcage import Sandbox
boxes = [Sandbox() for _ in range(2)]
for sb in boxes:
    sb.run("sleep 1000 & (setsid sleep 1001 &)")
    sb.run("sleep 0.1", session="other")
print(json.dumps({sb.id: sb.pids() for sb in boxes}), flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    """True while the pid runs (zombies awaiting their reaper count as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigkill_of_supervisor_kills_all_sandbox_processes_and_gc_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        sandboxes: dict[str, list[int]] = json.loads(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    pids = [pid for group in sandboxes.values() for pid in group]
    assert len(pids) >= 2 * 6  # bwrap x2, agent, 2 shells, 2 sleeps per sandbox
    while any(_alive(p) for p in pids) and time.monotonic() - killed_at < 2.0:
        time.sleep(0.02)
    assert [p for p in pids if _alive(p)] == [], "sandbox processes outlived their supervisor by 2 s"

    for sandbox_id in sandboxes:
        assert sandbox_id in existing_cgroup_names()
        assert (sandboxes_dir() / sandbox_id).exists()
    with Sandbox() as live:  # gc must not touch sandboxes of a live supervisor
        report = collect()
        assert sorted(report.sandboxes) == sorted(sandboxes)
        assert live.id not in report.sandboxes
        assert live.run("echo still here").output == "still here\n"
        for sandbox_id in sandboxes:
            assert sandbox_id not in existing_cgroup_names()
            assert not (sandboxes_dir() / sandbox_id).exists()
            assert not (workspaces_dir() / sandbox_id).exists()
            assert sandbox_id not in leased_uids().values()
    assert collect().empty


def test_gc_kills_processes_left_in_a_cgroup() -> None:
    sb = Sandbox()
    sb.run("sleep 1000 &")
    pids = sb.pids()
    # Simulate a supervisor that died without its sandboxes dying (e.g. pdeathsig lost).
    meta = sandboxes_dir() / sb.id / "meta.json"
    data = json.loads(meta.read_text())
    data["supervisor_pid"] = 999_999_999
    meta.write_text(json.dumps(data))
    report = collect()
    assert sb.id in report.sandboxes and report.processes >= len(pids) - 1
    assert not any(_alive(p) for p in pids)
    assert Cgroup(sb.id).pids() == []
    sb.close()  # closing after gc is harmless


def test_gc_cli_reports_what_it_removed(tmp_path: Path) -> None:
    cgroup = Cgroup("sb-orphan000001")
    from rollcage.sandbox.cgroups import Limits

    cgroup.create(Limits(memory=64 * 1024**2, pids=16, cpus=0.1))
    (workspaces_dir() / "sb-orphan000001").mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-m", "rollcage.cli.main", "gc"], capture_output=True, text=True, check=True
    ).stdout
    assert "removed sandbox sb-orphan000001" in out
    assert "removed cgroup" in out and "removed directory" in out
    again = subprocess.run(
        [sys.executable, "-m", "rollcage.cli.main", "gc"], capture_output=True, text=True, check=True
    ).stdout
    assert again.strip() == "nothing to remove"


def test_failed_start_leaves_nothing_half_made(tmp_path: Path) -> None:
    root = Path("/var/tmp") / f"rollcage-broken-{os.getpid()}"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "bash").write_text("not a program")  # passes validation, cannot run
    root.chmod(0o755)
    try:
        before = (set(existing_cgroup_names()), _names(sandboxes_dir()), _names(workspaces_dir()), set(leased_uids()))
        with pytest.raises(HostError, match="died while starting"):
            Sandbox(SandboxConfig(rootfs=root))
        after = (set(existing_cgroup_names()), _names(sandboxes_dir()), _names(workspaces_dir()), set(leased_uids()))
        assert before == after
    finally:
        import shutil

        shutil.rmtree(root)


def _names(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.is_dir() else set()


def test_close_stops_everything_and_is_fast() -> None:
    sb = Sandbox()
    sb.run("for i in 1 2 3 4 5; do sleep 1000 & done; (setsid nohup sleep 1000 >/dev/null 2>&1 &)")
    pids = sb.pids()
    start = time.monotonic()
    sb.close()
    assert time.monotonic() - start < 2.0
    assert not any(_alive(p) for p in pids)
    assert sb.id not in existing_cgroup_names()
    assert not (sandboxes_dir() / sb.id).exists() and not sb.workspace.exists()
