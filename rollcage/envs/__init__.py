"""Environments: terminal tasks in rollcage sandboxes with a GEM/Gymnasium API.

``make("rollcage:terminal/<task>")`` builds a :class:`TerminalEnv` for a bundled task;
``register`` adds more; ``registry()`` lists them. :class:`GymnasiumTerminalEnv` (imported
lazily, it needs gymnasium) wraps one as a ``gymnasium.Env``.
"""

from __future__ import annotations

from typing import Any

from rollcage.envs.registry import EnvSpec, UnknownEnvError, make, register, register_tasks, registry, spec
from rollcage.envs.reward import SEVERITIES, AlertCollector, RewardConfig, shaping
from rollcage.envs.task import Task, TaskError, TaskSpec, Timeouts, builtin_tasks_dir, load_task, load_tasks
from rollcage.envs.terminal import VERIFIER_DIR, TerminalEnv, parse_score
from rollcage.envs.tools import TOOL_NAMES, TOOL_SCHEMAS, ActionError, ToolCall, parse_action

__all__ = [
    "SEVERITIES",
    "TOOL_NAMES",
    "TOOL_SCHEMAS",
    "VERIFIER_DIR",
    "ActionError",
    "AlertCollector",
    "EnvSpec",
    "GymnasiumTerminalEnv",
    "RewardConfig",
    "Task",
    "TaskError",
    "TaskSpec",
    "TerminalEnv",
    "Timeouts",
    "ToolCall",
    "UnknownEnvError",
    "builtin_tasks_dir",
    "load_task",
    "load_tasks",
    "make",
    "parse_action",
    "parse_score",
    "register",
    "register_tasks",
    "registry",
    "shaping",
    "spec",
]


def __getattr__(name: str) -> Any:
    if name == "GymnasiumTerminalEnv":
        from rollcage.envs.gym import GymnasiumTerminalEnv

        return GymnasiumTerminalEnv
    raise AttributeError(f"module 'rollcage.envs' has no attribute {name!r}")
