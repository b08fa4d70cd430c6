"""The :class:`ModelBackend` protocol and the backends that need no server: scripted replays.

Every backend turns a conversation (OpenAI-format message dicts) and the tool schemas into one
:class:`~rollcage.agent.types.ModelReply`. ``complete`` blocks; ``acomplete`` is the asyncio
variant (backends without native async run ``complete`` in a worker thread).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from rollcage.agent.types import Message, ModelError, ModelReply, ToolCall, Usage, new_call_id, parse_arguments


@runtime_checkable
class ModelBackend(Protocol):
    """Anything that answers a conversation with a :class:`ModelReply`."""

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply: ...

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply: ...


class SyncBackend:
    """Base for backends whose work is blocking: ``acomplete`` runs ``complete`` in a thread."""

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        raise NotImplementedError

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        return await asyncio.to_thread(self.complete, messages, tools)


Action = Any  # str (a bash command) | {"name", "arguments"} | ToolCall | ModelReply | list of calls


def to_tool_call(action: Any) -> ToolCall:
    """Normalise a scripted action into a :class:`ToolCall`.

    Accepts a :class:`ToolCall`, a plain string (a bash command), ``{"name", "arguments"}``
    (arguments as a dict or a JSON string) or an OpenAI wire entry ``{"function": {...}}``.
    """
    if isinstance(action, ToolCall):
        return action
    if isinstance(action, str):
        return ToolCall(new_call_id(), "bash", {"command": action})
    if isinstance(action, dict):
        call_id = action.get("id") or new_call_id()
        if isinstance(action.get("function"), dict):
            action = action["function"]
        name = action.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a scripted tool call needs a 'name': {action!r}")
        arguments, error = parse_arguments(name, action.get("arguments"))
        return ToolCall(str(call_id), name, arguments, error)
    raise TypeError(f"cannot turn {type(action).__name__} into a tool call")


class ScriptedBackend(SyncBackend):
    """Replays a fixed list of actions, one per model turn, whatever the conversation says.

    Each action is a bash command string, a ``{"name", "arguments"}`` dict, a :class:`ToolCall`,
    a list of those (several calls in one turn) or a whole :class:`ModelReply`. When the script
    runs out, ``then`` decides: ``"submit"`` (default) calls ``submit``; ``"stop"`` answers with
    no tool call; ``"error"`` raises :class:`ModelError`. Used for tests, demos and rogue policies.
    """

    def __init__(
        self,
        actions: Sequence[Action],
        *,
        then: Literal["submit", "stop", "error"] = "submit",
        content: str = "",
    ) -> None:
        if then not in ("submit", "stop", "error"):
            raise ValueError("then must be 'submit', 'stop' or 'error'")
        self._replies = [self._reply(a, content) for a in actions]
        self._then = then
        self.calls = 0  # how many times the backend was asked

    @staticmethod
    def _reply(action: Action, content: str) -> ModelReply:
        if isinstance(action, ModelReply):
            return action
        actions = action if isinstance(action, list) else [action]
        return ModelReply(content=content, tool_calls=[to_tool_call(a) for a in actions], raw=action)

    @property
    def remaining(self) -> int:
        return max(0, len(self._replies) - self.calls)

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        index = self.calls
        self.calls += 1
        if index < len(self._replies):
            r = self._replies[index]
            # fresh ids each time so a reused script never repeats tool_call ids in one conversation
            calls = [ToolCall(new_call_id(), c.name, dict(c.arguments), c.error) for c in r.tool_calls]
            return ModelReply(r.content, calls, Usage(), r.raw, "tool_calls" if calls else "stop")
        if self._then == "submit":
            return ModelReply("", [ToolCall(new_call_id(), "submit", {})], Usage(), None, "tool_calls")
        if self._then == "stop":
            return ModelReply("[script finished]", [], Usage(), None, "stop")
        raise ModelError(f"scripted backend ran out of actions after {len(self._replies)}")

    def __repr__(self) -> str:
        return f"ScriptedBackend({len(self._replies)} actions, then={self._then!r})"


def tool_calls_to_json(calls: list[ToolCall]) -> str:
    return json.dumps([c.to_dict() for c in calls])
