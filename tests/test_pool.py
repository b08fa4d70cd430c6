"""Warm pools hand out fresh sandboxes and never reuse one."""

from __future__ import annotations

import pytest

from rollcage import RollcageError, SandboxConfig, SandboxPool
from rollcage.sandbox.cgroups import existing_cgroup_names


def test_pool_hands_out_fresh_sandboxes_and_destroys_released_ones() -> None:
    with SandboxPool(SandboxConfig(memory="256m"), size=2) as pool:
        pool.wait_ready(timeout=30)
        first = pool.acquire(run_id="r1", episode_id="e1")
        assert first.attribution.run_id == "r1" and first.attribution.episode_id == "e1"
        first.run("echo dirty > /work/left-behind; cd /tmp; sleep 1000 &")
        pool.release(first)
        pool.wait_released()
        assert first.closed and first.cgroup.pids() == []
        second = pool.acquire()
        assert second.id != first.id
        assert second.run("ls -A /work; pwd").output == "/work\n"
        pool.release(second)
        pool.wait_ready(timeout=30)
        ids = [sb.id for sb in list(pool._ready.queue)]
    assert not set(ids) & set(existing_cgroup_names())


def test_closed_pool_refuses_acquire() -> None:
    pool = SandboxPool(size=1)
    pool.close()
    with pytest.raises(RollcageError, match="closed"):
        pool.acquire()


def test_pool_surfaces_start_failures() -> None:
    with SandboxPool(SandboxConfig(workdir="/usr/inside-readonly"), size=1) as pool:
        with pytest.raises(RollcageError, match="read-only"):
            pool.wait_ready(timeout=30)
        with pytest.raises(RollcageError, match="read-only"):
            pool.acquire(timeout=5)
