"""Rollouts in real sandboxes: many episodes at once, the trajectory store and its index,
resuming an interrupted run, and an agent driven by a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollcage.agent import OpenAIBackend
from rollcage.agent.fake_server import FakeOpenAIServer, tool_calls_response
from rollcage.rollout import AgentPolicy, RunStore, ScriptedPolicy, reference_policy, run_rollouts
from rollcage.rollout.store import TRAJECTORIES

TASKS = ["reverse-lines", "sort-unique", "create-hello"]


class _Stop(Exception):
    pass


def test_reference_episodes_all_succeed_and_are_stored(tmp_path: Path) -> None:
    summary = run_rollouts(TASKS, reference_policy, episodes=6, concurrency=3, store_dir=tmp_path, run_id="r6",
                           progress=False)  # fmt: skip
    assert summary.errors == []
    assert (summary.episodes, summary.executed, summary.skipped, summary.succeeded) == (6, 6, 0, 6)
    assert summary.success_rate == 1.0 and summary.mean_reward == pytest.approx(1.0)
    assert summary.alerts == 0 and summary.alerts_by_category == {}
    assert summary.steps == 18 and summary.executed_steps == 18  # write solution, run it, submit
    assert summary.statuses == {"submitted": 6}
    assert summary.episodes_per_s > 0 and summary.steps_per_s == pytest.approx(18 / summary.wall_s, rel=0.01)
    assert summary.per_task.keys() == set(TASKS) and all(t["episodes"] == 2 for t in summary.per_task.values())
    d = summary.to_dict()
    assert json.loads(json.dumps(d))["run_id"] == "r6"

    lines = (tmp_path / "r6" / TRAJECTORIES).read_text().splitlines()
    assert len(lines) == 6
    records = [json.loads(line) for line in lines]
    assert sorted(r["episode_id"] for r in records) == [f"ep{i:05d}-{TASKS[i % 3]}" for i in range(6)]
    first = records[0]
    for key in ("run_id", "episode_id", "task", "seed", "steps", "reward", "success", "alerts", "status", "durations"):
        assert key in first
    step = first["steps"][1]
    assert step["action"]["name"] == "bash" and "[exit code 0]" in step["observation"]
    assert {"policy_s", "env_s", "tokens", "alerts", "started"} <= step.keys()

    store = RunStore.open(tmp_path / "r6")
    rows = store.episodes()
    assert len(rows) == 6 and all(r["status"] == "submitted" and r["success"] and r["n_alerts"] == 0 for r in rows)
    assert all(r["alerts_by_category"] == {} and r["offset"] is not None for r in rows)
    traj = store.trajectory(rows[3]["episode_id"])
    assert traj["episode_id"] == rows[3]["episode_id"] and len(traj["steps"]) == 3
    s = store.summary()
    assert (s["episodes"], s["succeeded"], s["running"]) == (6, 6, 0)
    store.close()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path: Path, concurrency: int) -> None:
    seen: list[str] = []

    def stop_after_two(record: dict) -> None:
        seen.append(record["episode_id"])
        if len(seen) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run_rollouts(TASKS, reference_policy, episodes=6, concurrency=concurrency, store_dir=tmp_path, run_id="rr",
                     progress=False, on_episode=stop_after_two)  # fmt: skip
    store = RunStore.open(tmp_path / "rr")
    assert store.finished_ids() == set(seen)  # episodes in flight when it stopped stay unrecorded
    store.close()

    rerun: list[str] = []
    summary = run_rollouts(TASKS, reference_policy, episodes=6, concurrency=2, store_dir=tmp_path, run_id="rr",
                           progress=False, on_episode=lambda r: rerun.append(r["episode_id"]))  # fmt: skip
    assert summary.executed == 4 and summary.skipped == 2 and not set(rerun) & set(seen)
    assert len(rerun) == len(set(rerun)) == 4
    assert summary.episodes == 6 and summary.succeeded == 6
    ids = [json.loads(line)["episode_id"] for line in (tmp_path / "rr" / TRAJECTORIES).read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6

    again = run_rollouts(TASKS, reference_policy, episodes=6, concurrency=2, store_dir=tmp_path, run_id="rr",
                         progress=False)  # fmt: skip
    assert again.executed == 0 and again.skipped == 6 and again.episodes == 6


def test_a_policy_that_fails_the_task_is_recorded_as_failed(tmp_path: Path) -> None:
    summary = run_rollouts(["create-hello"], lambda task: ScriptedPolicy(["echo nothing to do"]), episodes=1,
                           concurrency=1, store_dir=tmp_path, run_id="fail", progress=False)  # fmt: skip
    assert summary.succeeded == 0 and summary.mean_reward == 0.0 and summary.statuses == {"submitted": 1}


def test_agent_policy_through_the_openai_wire_format(tmp_path: Path) -> None:
    script = [
        tool_calls_response(("bash", {"command": "echo 'Hello, rollcage!' > /work/hello.txt"}), content="writing"),
        tool_calls_response(("read_file", {"path": "hello.txt"})),
    ]
    with FakeOpenAIServer(script) as server:  # then: submit
        summary = run_rollouts(
            ["create-hello"],
            lambda task: AgentPolicy(OpenAIBackend(server.base_url, model="fake", initial_backoff_s=0.01)),
            episodes=1, concurrency=1, store_dir=tmp_path, run_id="agent", progress=False,
        )  # fmt: skip
        assert server.hits == 3
        last = server.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert last[-1]["content"].strip() == "Hello, rollcage!"
    with RunStore.open(tmp_path / "agent") as store:
        traj = store.trajectory("ep00000-create-hello")
    assert traj["status"] == "submitted" and traj["policy"].startswith("agent:")
    assert [s["action"]["name"] for s in traj["steps"]] == ["bash", "read_file", "submit"]
    assert traj["steps"][0]["message"] == "writing" and traj["steps"][0]["tokens"] == {"prompt": 10, "completion": 5}
    assert summary.succeeded == 1, traj["verifier"]
