"""GEM: ``gem.make("rollcage:terminal/<task>")`` runs a real episode."""

from __future__ import annotations

import pytest

gem = pytest.importorskip("gem", reason="gem-llm is not installed")


def test_gem_make_runs_a_task() -> None:
    import rollcage.train.gem_env as gem_env

    assert "rollcage:terminal/create-hello" in gem.envs.registration.ENV_REGISTRY
    env = gem.make("rollcage:terminal/create-hello")
    assert isinstance(env, gem.Env)
    obs, info = env.reset(seed=1)
    assert "hello.txt" in obs and info["task_id"] == "create-hello"
    try:
        env.step('<tool_call>{"name": "write_file", "arguments": {"path": "hello.txt", '
                 '"content": "Hello, rollcage!\\n"}}</tool_call>')  # fmt: skip
        _, reward, terminated, _, info = env.step('{"name": "submit", "arguments": {}}')
        assert terminated and reward == 1.0 and info["success"]
    finally:
        env.close()
    assert gem_env.parse_text_action("ls -la") == "ls -la"
    assert gem_env.register_gem() == []  # idempotent
