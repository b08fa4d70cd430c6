"""The Ray backend: the same API and the same store, episodes run as tasks on a local Ray instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollcage.rollout import RunStore, reference_policy, run_rollouts
from rollcage.rollout.store import TRAJECTORIES

ray = pytest.importorskip("ray")


def test_ray_backend_runs_episodes_into_the_same_store(tmp_path: Path) -> None:
    assert not ray.is_initialized()
    summary = run_rollouts(["reverse-lines", "create-hello"], reference_policy, episodes=2, concurrency=2,
                           store_dir=tmp_path, run_id="ray", progress=False, backend="ray")  # fmt: skip
    assert not ray.is_initialized()  # the run shut down the instance it started
    assert summary.errors == [] and summary.backend == "ray"
    assert (summary.episodes, summary.executed, summary.succeeded) == (2, 2, 2)
    lines = (tmp_path / "ray" / TRAJECTORIES).read_text().splitlines()
    assert sorted(json.loads(x)["episode_id"] for x in lines) == ["ep00000-reverse-lines", "ep00001-create-hello"]
    with RunStore.open(tmp_path / "ray") as store:
        assert {r["status"] for r in store.episodes()} == {"submitted"}
        assert store.trajectory("ep00001-create-hello")["success"] is True
