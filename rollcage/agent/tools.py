"""The agent's tools: bash, read_file, write_file, edit, list_dir and submit.

Each tool has an OpenAI function schema and acts on a :class:`~rollcage.Sandbox`. A
:class:`Toolbox` runs tool calls: it checks the arguments against the schema, turns every
failure (unknown tool, bad or missing arguments, a missing file, an ``edit`` whose text does
not occur exactly once) into an observation with ``ok=False`` instead of an exception, and
truncates long outputs, keeping head and tail around a visible
``[... N bytes truncated ...]`` marker. Only :class:`~rollcage.SandboxClosedError` passes
through: a sandbox that is gone ends the episode.

Relative paths are taken from ``workdir`` (``/work``, the sandbox's writable workspace), not
from the shell's current directory.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rollcage.agent.types import ToolCall
from rollcage.errors import SandboxClosedError

DEFAULT_WORKDIR = "/work"
DEFAULT_MAX_OUTPUT_BYTES = 16_000


class ToolError(Exception):
    """A tool cannot do what it was asked; the message becomes the agent's observation."""


@dataclass
class ToolResult:
    """What a tool call produced. ``done`` ends the episode (``submit``), with ``answer``."""

    output: str
    ok: bool = True
    done: bool = False
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolContext:
    sandbox: Any  # rollcage.Sandbox, or anything with run/read_bytes/write_file
    step: int | None = None
    workdir: str = DEFAULT_WORKDIR

    def path(self, value: str) -> str:
        if not value:
            raise ToolError("path must not be empty")
        if "\x00" in value:
            raise ToolError("path must not contain NUL bytes")
        return posixpath.normpath(value if value.startswith("/") else posixpath.join(self.workdir, value))


def truncate(text: str, max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES, head_fraction: float = 0.5) -> str:
    """Keep at most ``max_bytes`` bytes of ``text`` (UTF-8): its head and tail around a marker
    ``[... N bytes truncated ...]`` that says how much was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    head_n = int(max_bytes * head_fraction)
    tail_n = max_bytes - head_n
    head = data[:head_n].decode("utf-8", "ignore")
    tail = data[len(data) - tail_n :].decode("utf-8", "ignore") if tail_n > 0 else ""
    cut = len(data) - len(head.encode("utf-8", "surrogatepass")) - len(tail.encode("utf-8", "surrogatepass"))
    return f"{head}\n[... {cut} bytes truncated ...]\n{tail}"


class Tool:
    """A tool: ``name``, ``description``, ``parameters`` (JSON schema) and :meth:`run`."""

    name: str = ""
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


class BashTool(Tool):
    """Runs a command in the sandbox's persistent default shell session (cwd and exported
    variables carry over). ``timeout`` is the default per command; the model may ask for up to
    ``max_timeout`` seconds."""

    name = "bash"
    description = (
        "Run a bash command in a persistent shell (the working directory and environment carry over "
        "between calls). Output is stdout and stderr interleaved; long output is truncated."
    )

    def __init__(self, timeout: float = 60.0, max_timeout: float = 600.0, session: str = "default") -> None:
        self.timeout = timeout
        self.max_timeout = max_timeout
        self.session = session
        self.parameters = _obj(
            {
                "command": {"type": "string", "description": "the bash command to run"},
                "timeout": {"type": "number", "description": f"seconds before it is killed (default {timeout:g})"},
            },
            ["command"],
        )

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        command = args["command"]
        if not command.strip():
            raise ToolError("command is empty")
        timeout = args.get("timeout") or self.timeout
        if timeout <= 0:
            raise ToolError("timeout must be a positive number of seconds")
        timeout = min(float(timeout), self.max_timeout)
        r = ctx.sandbox.run(command, timeout=timeout, step=ctx.step, session=self.session)
        notes = []
        if r.truncated:
            notes.append(f"[output capped by the sandbox: {r.output_bytes} bytes produced]")
        if r.timed_out:
            notes.append(f"[command timed out after {timeout:g}s and was killed]")
        if r.session_restarted:
            notes.append("[the shell exited; the next command starts in a fresh shell]")
        notes.append(f"[exit code {r.exit_code}]")
        text = r.output if r.output.endswith("\n") or not r.output else r.output + "\n"
        meta = {"exit_code": r.exit_code, "timed_out": r.timed_out, "duration_s": r.duration_s}
        return ToolResult(text + "\n".join(notes), ok=r.exit_code == 0 and not r.timed_out, meta=meta)


class ReadFileTool(Tool):
    name = "read_file"
    description = "Read a text file (relative paths are taken from /work)."
    parameters = _obj({"path": {"type": "string"}}, ["path"])

    def __init__(self, max_bytes: int = 8 * 1024**2) -> None:
        self.max_bytes = max_bytes

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = ctx.path(args["path"])
        data = ctx.sandbox.read_bytes(path, self.max_bytes)
        if not data:
            return ToolResult(f"({path} is empty)")
        if b"\x00" in data[:8192]:
            return ToolResult(f"{path} looks binary ({len(data)} bytes); inspect it with bash (xxd, file)", ok=False)
        return ToolResult(data.decode("utf-8", "replace"))


class WriteFileTool(Tool):
    name = "write_file"
    description = "Create or overwrite a text file; parent directories are created."
    parameters = _obj({"path": {"type": "string"}, "content": {"type": "string"}}, ["path", "content"])

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = ctx.path(args["path"])
        data = args["content"].encode()
        ctx.sandbox.write_file(path, data)
        return ToolResult(f"wrote {len(data)} bytes to {path}")


class EditTool(Tool):
    name = "edit"
    description = (
        "Replace old_str with new_str in a file. old_str must occur exactly once: include enough "
        "surrounding lines to make it unique."
    )
    parameters = _obj(
        {"path": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"}},
        ["path", "old_str", "new_str"],
    )

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = ctx.path(args["path"])
        old, new = args["old_str"], args["new_str"]
        if not old:
            raise ToolError("old_str must not be empty")
        text = ctx.sandbox.read_bytes(path).decode("utf-8", "surrogateescape")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_str was not found in {path}; nothing was changed")
        if count > 1:
            raise ToolError(
                f"old_str occurs {count} times in {path}; include more context so it occurs exactly once. "
                "Nothing was changed"
            )
        index = text.index(old)
        ctx.sandbox.write_file(path, text.replace(old, new, 1).encode("utf-8", "surrogateescape"))
        line = text.count("\n", 0, index) + 1
        return ToolResult(f"edited {path}: replaced 1 occurrence at line {line}")


class ListDirTool(Tool):
    name = "list_dir"
    description = "List a directory (default /work), with sizes and permissions."
    parameters = _obj({"path": {"type": "string"}}, [])

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = ctx.path(args.get("path") or ctx.workdir)
        r = ctx.sandbox.run(f"ls -la -- {shlex.quote(path)}", timeout=30, step=ctx.step)
        return ToolResult(
            r.output or f"[exit code {r.exit_code}]", ok=r.exit_code == 0, meta={"exit_code": r.exit_code}
        )


class SubmitTool(Tool):
    name = "submit"
    description = "Finish the task. Call it once the work is done; give a short final answer if one is asked for."
    parameters = _obj({"answer": {"type": "string", "description": "final answer, if any"}}, [])

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        answer = args.get("answer")
        return ToolResult("submitted", done=True, answer=answer if answer is not None else "")


def default_tools(bash_timeout: float = 60.0) -> list[Tool]:
    return [BashTool(timeout=bash_timeout), ReadFileTool(), WriteFileTool(), EditTool(), ListDirTool(), SubmitTool()]


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_arguments(schema: dict[str, Any], args: dict[str, Any], tool: str) -> None:
    """A small check of ``args`` against a flat object schema: required keys, types, no unknown keys."""
    props: dict[str, Any] = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        raise ToolError(f"{tool} needs argument(s) {', '.join(missing)}; its parameters: {', '.join(props) or 'none'}")
    if schema.get("additionalProperties") is False:
        unknown = [k for k in args if k not in props]
        if unknown:
            raise ToolError(f"{tool} has no argument(s) {', '.join(unknown)}; its parameters: {', '.join(props)}")
    for key, value in args.items():
        want = props.get(key, {}).get("type")
        if want is None or want not in _TYPES or (value is None and key not in schema.get("required", [])):
            continue
        if not isinstance(value, _TYPES[want]) or (want in ("integer", "number") and isinstance(value, bool)):
            raise ToolError(f"argument {key} of {tool} must be a {want}, got {type(value).__name__}")


class Toolbox:
    """A set of tools, their schemas, and the one place tool calls are run."""

    def __init__(
        self,
        tools: Iterable[Tool] | None = None,
        *,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        workdir: str = DEFAULT_WORKDIR,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in default_tools() if tools is None else tools:
            if tool.name in self.tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self.max_output_bytes = max_output_bytes
        self.workdir = workdir

    @property
    def names(self) -> list[str]:
        return list(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    def execute(self, call: ToolCall, sandbox: Any, step: int | None = None) -> ToolResult:
        """Run ``call``; every failure but a closed sandbox comes back as ``ok=False``."""
        try:
            if call.error:
                raise ToolError(call.error)
            tool = self.tools.get(call.name)
            if tool is None:
                raise ToolError(f"unknown tool {call.name!r}; the tools are: {', '.join(self.tools)}")
            check_arguments(tool.parameters, call.arguments, call.name)
            result = tool.run(call.arguments, ToolContext(sandbox, step, self.workdir))
        except SandboxClosedError:
            raise
        except ToolError as exc:
            result = ToolResult(f"error: {exc}", ok=False)
        except OSError as exc:  # SandboxFileError is an OSError: missing file, is a directory, ...
            detail = exc.strerror or str(exc)
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            result = ToolResult(f"error: {call.name} failed: {detail}{where}", ok=False)
        except Exception as exc:  # a tool must never kill the loop
            result = ToolResult(f"error: {call.name} failed: {type(exc).__name__}: {exc}", ok=False)
        result.output = truncate(result.output, self.max_output_bytes)
        return result
