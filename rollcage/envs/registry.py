"""Environment registry: ``register(id, ...)``, ``make(id, **kwargs)``, ``registry()``.

The bundled task suite registers itself on first use as ``rollcage:terminal/<task-id>``.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollcage.envs.task import Task, TaskError, builtin_tasks_dir, load_task, load_tasks

PREFIX = "rollcage:terminal/"


class UnknownEnvError(KeyError):
    """``make`` was given an id that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown environment"


@dataclass
class EnvSpec:
    """How to build one environment: a task (object or directory) or an entry point, plus kwargs."""

    id: str
    task: Task | Path | None = None
    entry_point: Callable[..., Any] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, **kwargs: Any) -> Any:
        merged = {**self.kwargs, **kwargs}
        if self.entry_point is not None:
            return self.entry_point(**merged)
        from rollcage.envs.terminal import TerminalEnv

        task = self.task if isinstance(self.task, Task) else load_task(self.task)  # type: ignore[arg-type]
        return TerminalEnv(task, **merged)


_REGISTRY: dict[str, EnvSpec] = {}
_LOCK = threading.Lock()
_BUILTINS_LOADED = False


def register(
    id: str,
    task: Task | str | Path | None = None,
    *,
    entry_point: Callable[..., Any] | None = None,
    override: bool = False,
    **kwargs: Any,
) -> EnvSpec:
    """Register ``id`` for a task (a :class:`Task` or task directory) or an ``entry_point`` callable."""
    if (task is None) == (entry_point is None):
        raise ValueError("register() needs exactly one of task= or entry_point=")
    if not isinstance(id, str) or not id:
        raise ValueError("environment id must be a non-empty string")
    if task is not None and not isinstance(task, Task):
        task = load_task(task)  # validate now: a bad task directory fails at registration
    spec = EnvSpec(id=id, task=task, entry_point=entry_point, kwargs=dict(kwargs))
    with _LOCK:
        if id in _REGISTRY and not override:
            raise ValueError(f"environment {id!r} is already registered (pass override=True to replace it)")
        _REGISTRY[id] = spec
    return spec


def register_tasks(root: str | Path, prefix: str = PREFIX, override: bool = False) -> list[str]:
    """Register every task directory under ``root`` as ``<prefix><task-id>``; returns the ids."""
    ids = []
    for task in load_tasks(root):
        env_id = prefix + task.id
        register(env_id, task, override=override)
        ids.append(env_id)
    return ids


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    root = builtin_tasks_dir()
    if root is None:
        return
    for task in load_tasks(root):
        env_id = PREFIX + task.id
        with _LOCK:
            _REGISTRY.setdefault(env_id, EnvSpec(id=env_id, task=task))


def registry() -> dict[str, EnvSpec]:
    """Every registered environment id and its spec (bundled tasks included)."""
    _load_builtins()
    with _LOCK:
        return dict(sorted(_REGISTRY.items()))


def spec(id: str) -> EnvSpec:
    envs = registry()
    if id not in envs:
        close = difflib.get_close_matches(id, list(envs), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; {len(envs)} ids are registered"
        raise UnknownEnvError(f"no environment {id!r}{hint}")
    return envs[id]


def make(id: str, **kwargs: Any) -> Any:
    """Build the environment registered as ``id`` (e.g. ``"rollcage:terminal/csv-sum"``);
    ``kwargs`` go to :class:`~rollcage.envs.TerminalEnv` (or the entry point)."""
    return spec(id).make(**kwargs)


__all__ = [
    "PREFIX",
    "EnvSpec",
    "TaskError",
    "UnknownEnvError",
    "make",
    "register",
    "register_tasks",
    "registry",
    "spec",
]
