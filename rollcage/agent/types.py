"""The vocabulary every backend speaks: tool calls, model replies and :class:`ModelError`.

Messages are plain dicts in the OpenAI chat-completions wire format
(``{"role": "system" | "user" | "assistant" | "tool", "content": ..., "tool_calls": [...],
"tool_call_id": ...}``); tool schemas are OpenAI function tools
(``{"type": "function", "function": {"name", "description", "parameters"}}``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from rollcage.errors import RollcageError

Message = dict[str, Any]


class ModelError(RollcageError):
    """The model could not be asked or its answer could not be understood.

    Raised for a server that is down or times out after every retry, an HTTP error that is not
    worth retrying (400, 401, 404, ...), and a reply that is not a chat completion at all
    (not JSON, no ``choices``). A reply that *is* a completion but carries a malformed tool call
    (arguments that are not a JSON object) is not a ``ModelError``: the call keeps its
    ``error`` and the agent sees that error as the tool's observation.
    """


def new_call_id() -> str:
    return "call_" + secrets.token_hex(8)


@dataclass
class ToolCall:
    """One tool call. ``error`` is set when the model's call could not be parsed (for example its
    arguments were not valid JSON); such a call is never run and the error becomes its observation."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The call as an OpenAI ``tool_calls`` entry (arguments as a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.error is not None:
            d["error"] = self.error
        return d


def parse_arguments(name: str, raw: Any) -> tuple[dict[str, Any], str | None]:
    """Decode a tool call's arguments (a JSON string on the wire, sometimes already a dict).

    Returns ``(arguments, error)``; ``error`` is a message for the agent when they are not a JSON object.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if isinstance(raw, dict):
        return dict(raw), None
    if not isinstance(raw, str):
        return {}, f"arguments of tool {name!r} must be a JSON object, got {type(raw).__name__}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        return {}, f"arguments of tool {name!r} are not valid JSON ({exc}): {shown}"
    if not isinstance(value, dict):
        return {}, f"arguments of tool {name!r} must be a JSON object, got {type(value).__name__}"
    return value, None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass
class ModelReply:
    """What a backend returns for one request. ``raw`` is the backend's own response (a dict for
    HTTP backends, the generated text for local ones), kept for debugging and not serialised."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    raw: Any = None
    finish_reason: str | None = None

    def to_message(self) -> Message:
        """The assistant message to append to the conversation."""
        msg: Message = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_wire() for c in self.tool_calls]
        return msg
