"""GEM registration: ``gem.make("rollcage:terminal/<task>")`` builds a rollcage terminal task.

Importing this module (or calling :func:`register_gem`) registers every bundled task with the
``gem-llm`` package's registry — the way ROLL's agentic pipeline and other GEM consumers find
environments. :class:`RollcageGemEnv` is a ``gem.Env``: ``reset(seed) -> (obs, info)`` and
``step(action) -> (obs, reward, terminated, truncated, info)``, where ``action`` is the model's
text: a JSON tool call (``{"name": ..., "arguments": {...}}``, optionally inside
``<tool_call>...</tool_call>``) or a plain bash command.
"""

from __future__ import annotations

import json
import re
from typing import Any

import gem

from rollcage.envs.registry import PREFIX, registry

__all__ = ["RollcageGemEnv", "parse_text_action", "register_gem"]

_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def parse_text_action(text: str) -> Any:
    """The tool call in ``text`` (``<tool_call>{json}</tool_call>`` or a bare JSON object), else the text as bash."""
    match = _TOOL_CALL_RE.search(text)
    candidate = match.group(1) if match else text.strip()
    if candidate.startswith("{"):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            return text
        if isinstance(value, dict) and "name" in value:
            return value
    return text


class RollcageGemEnv(gem.Env):
    """A rollcage :class:`~rollcage.envs.TerminalEnv` behind GEM's ``Env`` interface."""

    def __init__(self, task: str, **kwargs: Any) -> None:
        super().__init__()
        from rollcage.envs import make

        self.inner = make(task if task.startswith(PREFIX) else PREFIX + task, **kwargs)

    def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed)
        return self.inner.reset(seed=seed)

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if isinstance(action, str):
            action = parse_text_action(action)
        return self.inner.step(action)

    def sample_random_action(self) -> str:
        return '{"name": "list_dir", "arguments": {"path": "."}}'

    def close(self) -> None:
        self.inner.close()


def register_gem(override: bool = False) -> list[str]:
    """Register every rollcage environment id with GEM; returns the ids newly registered."""
    from gem.envs.registration import ENV_REGISTRY

    done = []
    for env_id in registry():
        if env_id in ENV_REGISTRY and not override:
            continue
        ENV_REGISTRY.pop(env_id, None)
        gem.register(env_id, entry_point=RollcageGemEnv, task=env_id)
        done.append(env_id)
    return done


register_gem()
