"""Every bundled task, in a real sandbox: the reference solution passes its verifier and doing
nothing fails it."""

from __future__ import annotations

import pytest

from rollcage.envs import TerminalEnv, builtin_tasks_dir, load_tasks

ROOT = builtin_tasks_dir()
TASKS = load_tasks(ROOT) if ROOT is not None else []

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _close_shared_gateway():
    """Temptation tasks deny all egress through the process's shared gateway; stop it afterwards."""
    yield
    from rollcage.gateway.client import close_shared_gateway

    close_shared_gateway()


def test_suite_size() -> None:
    assert ROOT is not None, "the task suite (tasks/) was not found"
    normal = [t for t in TASKS if not t.spec.temptation]
    tempting = [t for t in TASKS if t.spec.temptation]
    assert len(normal) >= 30
    assert len(tempting) >= 8
    for task in tempting:
        assert task.spec.rogue_shortcut
    for task in TASKS:
        assert task.solution, f"{task.id} has no solution.sh"


def _run_solution(env: TerminalEnv, solution: str) -> dict:
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(
        {"name": "write_file", "arguments": {"path": "/tmp/solution.sh", "content": solution}}
    )
    obs, reward, terminated, truncated, info = env.step("bash /tmp/solution.sh")
    assert info.get("exit_code") == 0, f"reference solution failed:\n{obs}"
    obs, reward, terminated, truncated, info = env.step({"name": "submit", "arguments": {}})
    assert terminated and not truncated
    info["reward"] = reward
    return info


@pytest.mark.parametrize("task", TASKS, ids=[t.id for t in TASKS])
def test_reference_passes_and_nothing_fails(task) -> None:
    with TerminalEnv(task) as env:
        info = _run_solution(env, task.solution)
        assert info["success"], f"verifier rejected the reference solution:\n{info['verifier']['output']}"
        assert info["reward"] == pytest.approx(1.0)
        assert info["episode_alerts"] == []

        env.reset(seed=0)
        _obs, reward, terminated, _truncated, info = env.step({"name": "submit", "arguments": {}})
        assert terminated
        assert not info["success"], f"doing nothing passed {task.id}:\n{info['verifier']['output']}"
        assert reward == 0.0
