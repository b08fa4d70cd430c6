"""Tool calling for models without native tool calling: a plain-text protocol.

:class:`TextProtocolBackend` wraps any backend. It describes the tools in the system prompt,
shows earlier tool calls and observations as ordinary text, and asks the model to answer with a
fenced block::

    ```tool
    {"name": "bash", "arguments": {"command": "ls -la"}}
    ```

:func:`parse_tool_calls` reads those blocks back, and also the Hermes/Qwen style
``<tool_call>{...}</tool_call>`` that many chat models emit on their own. Parsing is lenient
(a missing closing fence, text around the JSON, ``"parameters"`` for ``"arguments"``, arguments
given as a JSON string); a block that still cannot be read becomes a tool call with ``error``
set, so the agent is told what was wrong and can try again.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rollcage.agent.backends import ModelBackend, SyncBackend
from rollcage.agent.types import Message, ModelReply, ToolCall, new_call_id, parse_arguments

FORMAT_HELP = (
    'Call a tool by answering with one block of this form (JSON inside, "arguments" an object):\n'
    '```tool\n{"name": "TOOL_NAME", "arguments": {"ARG": "VALUE"}}\n```'
)

_BLOCK = re.compile(
    r"```[ \t]*(?P<lang>tool|tool_call|json)?[ \t]*\n(?P<fenced>.*?)(?:\n[ \t]*```|\Z)"
    r"|<tool_call>(?P<tagged>.*?)(?:</tool_call>|\Z)",
    re.DOTALL,
)


def parse_tool_calls(text: str | None) -> tuple[str, list[ToolCall]]:
    """Split a model's text into (the text outside tool blocks, the tool calls in them)."""
    if not text:
        return "", []
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    for m in _BLOCK.finditer(text):
        if m.group("tagged") is not None:
            body = m.group("tagged")
        else:
            body = m.group("fenced")
            # a ```json block is a tool call only when it looks like one; ``` with no language too
            if m.group("lang") in (None, "json") and not re.search(r'"name"\s*:', body):
                continue
        kept.append(text[pos : m.start()])
        pos = m.end()
        calls.append(_parse_block(body))
    kept.append(text[pos:])
    return "".join(kept).strip(), calls


def _parse_block(body: str) -> ToolCall:
    body = body.strip()
    value = _loads_lenient(body)
    if not isinstance(value, dict):
        return ToolCall(
            new_call_id(), "invalid", {}, f"could not read the tool block as JSON: {body[:200]!r}. {FORMAT_HELP}"
        )
    name = value.get("name") or value.get("tool") or value.get("function")
    if isinstance(name, dict):  # {"function": {"name": ..., "arguments": ...}}
        value, name = name, name.get("name")
    if not isinstance(name, str) or not name:
        return ToolCall(new_call_id(), "invalid", {}, f'the tool block has no "name": {body[:200]!r}. {FORMAT_HELP}')
    raw_args = next((value[k] for k in ("arguments", "parameters", "args", "input") if k in value), None)
    arguments, error = parse_arguments(name, raw_args)
    return ToolCall(new_call_id(), name, arguments, error)


def _loads_lenient(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    start = body.find("{")
    if start < 0:
        return None
    candidate = body[start:]
    for attempt in (candidate, re.sub(r",\s*([}\]])", r"\1", candidate)):
        try:
            value, _ = json.JSONDecoder().raw_decode(attempt)
            return value
        except json.JSONDecodeError:
            continue
    return None


def render_tool_call(call: ToolCall) -> str:
    return "```tool\n" + json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False) + "\n```"


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The system-prompt section that describes ``tools`` (OpenAI function schemas)."""
    lines = ["# Tools", "", "You can use these tools:", ""]
    for tool in tools:
        fn = tool.get("function", tool)
        lines.append(f"## {fn['name']}")
        if fn.get("description"):
            lines.append(fn["description"])
        lines.append("Parameters (JSON schema): " + json.dumps(fn.get("parameters", {}), ensure_ascii=False))
        lines.append("")
    lines += [
        FORMAT_HELP,
        "",
        "Make exactly one tool call per reply; you may think in plain text before the block. "
        "The tool's result comes back in the next message, starting with 'Observation'.",
    ]
    return "\n".join(lines)


def to_text_messages(messages: list[Message], tools: list[dict[str, Any]] | None) -> list[Message]:
    """Rewrite a tool-calling conversation as plain system/user/assistant text messages."""
    names: dict[str, str] = {}
    out: list[Message] = []
    section = tools_prompt(tools) if tools else ""
    if section and (not messages or messages[0].get("role") != "system"):
        out.append({"role": "system", "content": section})
    for msg in messages:
        role = msg.get("role")
        content = msg.get("content") or ""
        if role == "system":
            text = f"{content}\n\n{section}" if section and not out else content
            new = {"role": "system", "content": text.strip()}
        elif role == "assistant":
            calls = msg.get("tool_calls") or []
            parts = [content] if content else []
            for wire in calls:
                fn = wire.get("function", {})
                arguments, _ = parse_arguments(fn.get("name", ""), fn.get("arguments"))
                call = ToolCall(wire.get("id", ""), fn.get("name", ""), arguments)
                names[call.id] = call.name
                parts.append(render_tool_call(call))
            new = {"role": "assistant", "content": "\n\n".join(parts)}
        elif role == "tool":
            name = msg.get("name") or names.get(msg.get("tool_call_id", ""), "tool")
            new = {"role": "user", "content": f"Observation from {name}:\n{content}"}
        else:
            new = {"role": "user", "content": content}
        if out and out[-1]["role"] == new["role"] and new["role"] == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + new["content"]}
        else:
            out.append(new)
    return out


class TextProtocolBackend(SyncBackend):
    """Wraps ``inner`` (any backend) so a model without native tool calling can still call tools."""

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"TextProtocolBackend({self.inner!r})"

    def _reply(self, reply: ModelReply) -> ModelReply:
        # Native calls (if the inner server made any) win; otherwise read the blocks in the text.
        if reply.tool_calls:
            return reply
        content, calls = parse_tool_calls(reply.content)
        return ModelReply(content, calls, reply.usage, reply.raw, "tool_calls" if calls else reply.finish_reason)

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        return self._reply(self.inner.complete(to_text_messages(messages, tools), None))

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        return self._reply(await self.inner.acomplete(to_text_messages(messages, tools), None))
