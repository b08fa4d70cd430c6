"""The environment's tool actions: thin functions over the :class:`~rollcage.Sandbox` API.

An action is a tool call ``{"name": ..., "arguments": {...}}`` (``arguments`` may be a JSON
string, as in the OpenAI wire format) or a plain string, which is a bash command.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any

from rollcage.errors import RollcageError, SandboxClosedError

TOOL_NAMES = ("bash", "read_file", "write_file", "edit", "list_dir", "submit")

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"name": "bash", "description": "Run a bash command in the workspace (state persists between calls).",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
    {"name": "read_file", "description": "Read a text file.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "write_file", "description": "Create or overwrite a text file.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                    "required": ["path", "content"]}},
    {"name": "edit", "description": "Replace the one occurrence of old_str in a file with new_str.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "old_str": {"type": "string"},
                                                     "new_str": {"type": "string"}},
                    "required": ["path", "old_str", "new_str"]}},
    {"name": "list_dir", "description": "List a directory.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}},
    {"name": "submit", "description": "End the episode and have the work checked.",
     "parameters": {"type": "object", "properties": {}}},
]  # fmt: skip


class ActionError(ValueError):
    """An action the environment cannot parse; the agent sees the message as its observation."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": dict(self.arguments)}


def parse_action(action: Any) -> ToolCall:
    """Normalise a string, a ``{"name", "arguments"}`` dict, or an OpenAI ``{"function": {...}}`` tool call."""
    if isinstance(action, ToolCall):
        return action
    if isinstance(action, str):
        return ToolCall("bash", {"command": action})
    if not isinstance(action, dict):
        raise ActionError(f"action must be a string or a tool call dict, got {type(action).__name__}")
    if "function" in action and isinstance(action["function"], dict):
        action = action["function"]
    name = action.get("name")
    if name not in TOOL_NAMES:
        raise ActionError(f"unknown tool {name!r}; tools: {', '.join(TOOL_NAMES)}")
    arguments = action.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ActionError(f"arguments of {name} are not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ActionError(f"arguments of {name} must be an object")
    required = {"bash": ["command"], "read_file": ["path"], "write_file": ["path", "content"],
                "edit": ["path", "old_str", "new_str"]}.get(name, [])  # fmt: skip
    for key in required:
        if not isinstance(arguments.get(key), str):
            raise ActionError(f"{name} needs a string argument {key!r}")
    return ToolCall(name, dict(arguments))


def resolve(path: str, workdir: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(workdir, path))


@dataclass
class ToolResult:
    output: str
    ok: bool = True
    exit_code: int | None = None
    timed_out: bool = False


def run_tool(sandbox: Any, call: ToolCall, *, workdir: str, timeout: float, step: int | None) -> ToolResult:
    """Run one non-submit tool call in ``sandbox``."""
    args = call.arguments
    try:
        if call.name == "bash":
            result = sandbox.run(args["command"], timeout=timeout, step=step)
            text = result.output
            if result.truncated:
                text += "\n[output truncated]"
            if result.timed_out:
                text += f"\n[command timed out after {timeout:g}s]"
            text += f"\n[exit code {result.exit_code}]"
            return ToolResult(text, result.exit_code == 0, result.exit_code, result.timed_out)
        if step is not None:
            sandbox.set_step(step)
        if call.name == "read_file":
            return ToolResult(sandbox.read_file(resolve(args["path"], workdir)))
        if call.name == "write_file":
            path = resolve(args["path"], workdir)
            sandbox.write_file(path, args["content"])
            return ToolResult(f"wrote {len(args['content'].encode())} bytes to {path}")
        if call.name == "edit":
            path = resolve(args["path"], workdir)
            text = sandbox.read_file(path)
            count = text.count(args["old_str"]) if args["old_str"] else 0
            if count != 1:
                return ToolResult(f"edit failed: old_str occurs {count} times in {path} (must be exactly once)", False)
            sandbox.write_file(path, text.replace(args["old_str"], args["new_str"], 1))
            return ToolResult(f"edited {path}")
        if call.name == "list_dir":
            path = resolve(str(args.get("path") or "."), workdir)
            result = sandbox.run(f"ls -la -- {shlex.quote(path)}", timeout=timeout, step=step)
            return ToolResult(result.output, result.exit_code == 0, result.exit_code)
    except SandboxClosedError:
        raise
    except (RollcageError, OSError) as exc:
        return ToolResult(f"{call.name} failed: {exc}", False)
    raise ActionError(f"tool {call.name!r} cannot be run here")
