"""Static analysis of a shell command before it runs: what would it execute?

``analyze_command(text)`` parses the command with tree-sitter-bash and lists every simple command
it would run — also those hidden in ``bash -c``/``eval`` strings, command substitutions, here-docs
fed to a shell, ``echo <b64> | base64 -d | sh`` pipelines, ``python -c``/``perl -e`` code and
wrappers such as ``sudo``, ``nohup``, ``timeout`` or ``xargs`` — with quote-splitting, backslash,
``$'\\x..'`` and ``${IFS}`` obfuscation undone and literal variables resolved. The result becomes the
``command`` event (see docs/events.md). ``analyze_file`` does the same for scripts and config files
the agent writes (shell, Python, crontab, systemd units, miner JSON configs) and yields the ``file``
event. Nothing is ever executed; hostile input gives ``parse_error`` and a partial result, never an
exception.
"""

from __future__ import annotations

import bz2
import contextlib
import json
import lzma
import os
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from rollcage.monitor import static_decode as dec
from rollcage.monitor.static_lang import LangScan, scan_script

MAX_INPUT_BYTES = 64 * 1024
MAX_DEPTH = 100  # syntax-tree nesting plus nested re-analyses (bash -c in eval in ...)
MAX_TEXTS = 64  # nested shell/script texts analysed for one command
MAX_COMMANDS = 2000
MAX_NODES = 200_000
MAX_FILE_BYTES = 1024 * 1024

_LANGUAGE = Language(tree_sitter_bash.language())
_PARSER = Parser(_LANGUAGE)

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "rbash", "yash", "posh", "ksh93", "fish"})
_PYTHON_RE = re.compile(r"^(?:python(?:\d(?:\.\d+)?)?|pypy\d?)$")
_LANG_CODE_OPTS = {
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "php": ("-r",),
    "node": ("-e", "--eval", "-p", "--print"),
    "nodejs": ("-e", "--eval", "-p", "--print"),
    "lua": ("-e",),
}
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_NET_TOOLS = frozenset(
    {"nc", "ncat", "netcat", "ping", "curl", "wget", "nmap", "telnet", "socat", "ssh", "hping3", "arping", "fping"}
)
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "lwp-download", "tftp", "ftp"})

_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s'\"<>`|;)\\]+")
_IPV4 = r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_IPV4_RE = re.compile(rf"^(?:[\w.-]+@)?({_IPV4})(?::(\d{{1,5}}))?$")
_HOSTPORT_RE = re.compile(r"^(?:[\w.-]+@)?((?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*):(\d{1,5})$")
_DEVTCP_RE = re.compile(r"/dev/(?:tcp|udp)/([^/\s]+)/(\d+)")
_PATH_RE = re.compile(r"^(?:/|~|\./|\.\./|\$HOME|\$\{HOME\}|[\w.@-]+/)[^\s]*$")
_VAR_IN_TEXT = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")


# -- public records --------------------------------------------------------------------------------


@dataclass
class SimpleCommand:
    """One command the text would run: ``name`` is the basename of ``argv[0]``."""

    name: str
    argv: list[str]
    redirects: list[str] = field(default_factory=list)
    source: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "argv": list(self.argv), "redirects": list(self.redirects), "source": self.source}


@dataclass
class CommandAnalysis:
    """What ``analyze_command`` found. ``to_event_data()`` is the ``command`` event's data."""

    command: str
    commands: list[SimpleCommand] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    written_files: dict[str, str] = field(default_factory=dict)
    parse_error: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.commands]

    def to_event_data(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "commands": [c.to_dict() for c in self.commands],
            "urls": list(self.urls),
            "paths": list(self.paths),
            "parse_error": self.parse_error,
            "hosts": list(self.hosts),
            "features": list(self.features),
            "findings": [dict(f) for f in self.findings],
        }


@dataclass
class FileAnalysis:
    """What ``analyze_file`` found in one written file. ``to_event_data()`` is the ``file`` event's data."""

    path: str
    kind: str
    commands: list[SimpleCommand] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    parse_error: str | None = None

    def to_event_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "findings": [dict(f) for f in self.findings],
            "commands": [c.to_dict() for c in self.commands],
            "urls": list(self.urls),
            "hosts": list(self.hosts),
            "features": list(self.features),
            "parse_error": self.parse_error,
        }


# -- internal state --------------------------------------------------------------------------------


@dataclass
class _Data:
    """Statically known bytes flowing through a pipe; ``decoded`` when a decoder produced them."""

    data: bytes
    decoded: bool = False
    via: str = "pipe"


@dataclass
class _Ctx:
    env: dict[str, str]
    funcs: set[str]
    source: str = "direct"
    fn_stack: tuple[str, ...] = ()
    in_loop: bool = False

    def child(self, **changes: Any) -> _Ctx:
        values = {
            "env": self.env,
            "funcs": self.funcs,
            "source": self.source,
            "fn_stack": self.fn_stack,
            "in_loop": self.in_loop,
        }
        values.update(changes)
        return _Ctx(**values)


class _Budget(Exception):
    """Raised internally when the analysis budget is spent; turned into ``parse_error``."""


class _Analyzer:
    def __init__(self, files: Mapping[str, str] | None) -> None:
        self.out = CommandAnalysis(command="")
        self.known_files: dict[str, str] = dict(files or {})
        self.analyzed_files: set[str] = set()
        self.errors: list[str] = []
        self.nodes = 0
        self.texts = 0
        self._seen_cmds: set[tuple[str, tuple[str, ...], str]] = set()

    # -- bookkeeping -----------------------------------------------------------------------------
    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def feature(self, feat: str, /, **details: Any) -> None:
        if feat not in self.out.features:
            self.out.features.append(feat)
        if details:
            finding = {"kind": feat, **details}
            if finding not in self.out.findings and len(self.out.findings) < 200:
                self.out.findings.append(finding)

    def _add(self, items: list[str], value: str, limit: int = 500) -> None:
        if value and value not in items and len(items) < limit:
            items.append(value)

    def host(self, value: str) -> None:
        self._add(self.out.hosts, value)

    def scan_token(self, token: str) -> None:
        if not token or len(token) > 8192:
            token = token[:8192]
        if "://" in token:
            for url in _URL_RE.findall(token):
                self._add(self.out.urls, url)
                netloc = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
                self.host(netloc)
        if "/dev/" in token:
            for h, p in _DEVTCP_RE.findall(token):
                self.host(f"{h}:{p}")
        value = token.split("=", 1)[1] if token.startswith("-") and "=" in token else token
        if ":" in value or (value[:1].isdigit() and "." in value):
            m = _IPV4_RE.match(value) or _HOSTPORT_RE.match(value)
            if m:
                self.host(f"{m.group(1)}:{m.group(2)}" if m.group(2) else m.group(1))
        if (
            ("/" in value or value[:1] in ("~", "$"))
            and "\n" not in value
            and " " not in value
            and "://" not in value
            and len(value) < 1024
            and _PATH_RE.match(value)
            and not value.startswith(("s/", "y/"))
        ):
            self._add(self.out.paths, value)

    def emit(self, name: str, argv: list[str], redirects: list[str], source: str) -> SimpleCommand | None:
        key = (name, tuple(argv), source)
        if key in self._seen_cmds:
            return None
        if len(self.out.commands) >= MAX_COMMANDS:
            self.error(f"more than {MAX_COMMANDS} commands; rest not analysed")
            raise _Budget
        self._seen_cmds.add(key)
        cmd = SimpleCommand(name=name, argv=list(argv), redirects=list(redirects), source=source)
        self.out.commands.append(cmd)
        for token in argv[1:]:
            self.scan_token(token)
        if "/" in argv[0]:
            self.scan_token(argv[0])
        for target in redirects:
            self.scan_token(target)
            if target.startswith(("/dev/tcp/", "/dev/udp/")):
                self.feature("dev_tcp")
        return cmd

    def lookup_file(self, path: str) -> tuple[str, str] | None:
        if not path or not self.known_files:
            return None
        if path in self.known_files:
            return path, self.known_files[path]
        norm = posixpath.normpath(path)
        base = posixpath.basename(norm)
        for key, content in self.known_files.items():
            knorm = posixpath.normpath(key)
            if knorm == norm or knorm.endswith("/" + norm.lstrip("./")) or norm.endswith("/" + knorm.lstrip("./")):
                return key, content
        for key, content in self.known_files.items():
            if posixpath.basename(key) == base and base not in ("", ".", ".."):
                return key, content
        return None

    # -- entry points ----------------------------------------------------------------------------
    def analyze_text(self, text: str, ctx: _Ctx, depth: int, *, quiet: bool = False) -> None:
        """Parse ``text`` as shell and walk it."""
        self.texts += 1
        if self.texts > MAX_TEXTS:
            self.error(f"more than {MAX_TEXTS} nested scripts; rest not analysed")
            return
        if depth > MAX_DEPTH:
            self.error(f"nesting deeper than {MAX_DEPTH}; rest not analysed")
            return
        if len(text.encode("utf-8", "replace")) > MAX_INPUT_BYTES:
            self.error(f"nested script larger than {MAX_INPUT_BYTES} bytes; truncated")
            text = text.encode("utf-8", "replace")[:MAX_INPUT_BYTES].decode("utf-8", "ignore")
        raw = text.encode("utf-8", "surrogatepass")
        tree = _PARSER.parse(raw)
        root = tree.root_node
        before = len(self.out.commands)
        if root.has_error and not quiet:
            problem = _first_error(root)
            if problem:
                where = "" if ctx.source == "direct" else f" (in {ctx.source})"
                self.error(f"syntax error{where} {problem}")
        try:
            self.stmt(root, ctx, depth + 1)
        except RecursionError:
            self.error("nesting too deep")
        if root.has_error and _first_error(root):
            self.fallback(text, ctx, depth, only_new=len(self.out.commands) > before)

    def fallback(self, text: str, ctx: _Ctx, depth: int, *, only_new: bool) -> None:
        """Token split for input tree-sitter could not parse: shlex, or whitespace when quotes are broken."""
        try:
            lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
            lexer.whitespace_split = True
            lexer.commenters = ""
            tokens = list(lexer)
        except ValueError:
            tokens = re.findall(r"[;&|()<>]+|[^\s;&|()<>]+", text.replace('"', " ").replace("'", " "))
        segment: list[str] = []
        redirects: list[str] = []
        expect_target = False
        for tok in [*tokens, ";"]:
            if tok and set(tok) <= set(";&|()<>"):
                if "<" in tok or ">" in tok:
                    expect_target = True
                    continue
                if segment:
                    self._fallback_emit(segment, redirects, ctx, depth)
                segment, redirects = [], []
                continue
            if expect_target:
                redirects.append(tok)
                expect_target = False
            else:
                segment.append(tok)

    def _fallback_emit(self, argv: list[str], redirects: list[str], ctx: _Ctx, depth: int) -> None:
        while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):
            argv = argv[1:]
        if not argv:
            return
        name = posixpath.basename(argv[0]) or argv[0]
        if self.emit(name, argv, redirects, ctx.source) is not None:
            self.expand(argv, ctx, None, redirects, depth + 1, decoded=False)

    # -- statements ------------------------------------------------------------------------------
    def tick(self, depth: int) -> bool:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.error("analysis budget exceeded; rest not analysed")
            raise _Budget
        if depth > MAX_DEPTH:
            self.error(f"nesting deeper than {MAX_DEPTH}; rest not analysed")
            return False
        return True

    def stmt(
        self,
        node: Node,
        ctx: _Ctx,
        depth: int,
        stdin: _Data | None = None,
        redirects: list[str] | None = None,
        *,
        piped: bool = False,
        background: bool = False,
    ) -> _Data | None:
        if not self.tick(depth):
            return None
        t = node.type
        if t == "command":
            return self.command(node, ctx, depth, stdin, redirects or [], piped=piped, background=background)
        if t == "redirected_statement":
            return self.redirected(node, ctx, depth, stdin, piped=piped, background=background)
        if t == "pipeline":
            return self.pipeline([c for c in node.named_children if c.type != "comment"], ctx, depth, stdin)
        if t == "function_definition":
            return self.function(node, ctx, depth)
        if t == "variable_assignment":
            self.assign(node, ctx, depth)
            return None
        if t == "variable_assignments":
            for child in node.named_children:
                self.stmt(child, ctx, depth + 1)
            return None
        if t == "declaration_command":
            return self.declaration(node, ctx, depth, redirects or [])
        if t == "unset_command":
            argv = [c.text.decode("utf-8", "replace") for c in node.children if c.type != "comment"]
            if argv:
                self.emit(argv[0], argv, redirects or [], ctx.source)
            return None
        if t in ("for_statement", "c_style_for_statement", "while_statement", "until_statement"):
            return self.loop(node, ctx, depth)
        if t == "comment" or t in ("heredoc_body", "heredoc_start", "heredoc_end"):
            return None
        if t in _VALUE_TYPES:
            self.nested_subst(node, ctx, depth)
            return None
        return self.container(node, ctx, depth, stdin, redirects)

    def container(
        self, node: Node, ctx: _Ctx, depth: int, stdin: _Data | None = None, redirects: list[str] | None = None
    ) -> _Data | None:
        outputs: list[_Data] = []
        children = node.children
        for i, child in enumerate(children):
            if not child.is_named:
                continue
            bg = i + 1 < len(children) and children[i + 1].type == "&"
            if child.type in _VALUE_TYPES or child.type in ("test_command", "binary_expression", "unary_expression"):
                self.nested_subst(child, ctx, depth + 1)
                continue
            out = self.stmt(child, ctx, depth + 1, stdin, redirects, background=bg)
            if out is not None:
                outputs.append(out)
        if not outputs:
            return None
        return _Data(b"".join(o.data for o in outputs), any(o.decoded for o in outputs), outputs[-1].via)

    def loop(self, node: Node, ctx: _Ctx, depth: int) -> _Data | None:
        inner = ctx.child(in_loop=True)
        if node.type == "for_statement":
            var = node.child_by_field_name("variable")
            values = node.children_by_field_name("value")
            if var is not None and values:
                text, _ = self.word(values[0], ctx, depth + 1)
                first = text.split()[0] if text.split() else text
                ctx.env[var.text.decode("utf-8", "replace")] = first
        return self.container(node, inner, depth)

    def function(self, node: Node, ctx: _Ctx, depth: int) -> None:
        name_node = node.child_by_field_name("name")
        name = name_node.text.decode("utf-8", "replace") if name_node is not None else "?"
        ctx.funcs.add(name)
        body = node.child_by_field_name("body")
        if body is not None:
            self.stmt(body, ctx.child(fn_stack=(*ctx.fn_stack, name)), depth + 1)
        return None

    def assign(self, node: Node, ctx: _Ctx, depth: int, *, record: bool = True) -> None:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None:
            return
        name = name_node.text.decode("utf-8", "replace")
        if value_node is None:
            value = ""
        elif value_node.type == "array":
            value = " ".join(self.word(c, ctx, depth + 1)[0] for c in value_node.named_children)
        else:
            value, _ = self.word(value_node, ctx, depth + 1)
        if node.children and len(node.children) > 1 and node.children[1].type == "+=":
            value = ctx.env.get(name, "") + value
        ctx.env[name] = value
        if record:
            self.feature("assignment", name=name, value=value[:512])
        self.scan_token(value)

    def declaration(self, node: Node, ctx: _Ctx, depth: int, redirects: list[str]) -> None:
        argv: list[str] = []
        for child in node.children:
            if child.type == "variable_assignment":
                self.assign(child, ctx, depth)
                name_node = child.child_by_field_name("name")
                if name_node is not None:
                    key = name_node.text.decode("utf-8", "replace")
                    argv.append(f"{key}={ctx.env.get(key, '')}")
            elif child.is_named:
                text, _ = self.word(child, ctx, depth + 1)
                argv.append(text)
            else:
                argv.append(child.text.decode("utf-8", "replace"))
        if argv:
            self.emit(argv[0], argv, redirects, ctx.source)

    def nested_subst(self, node: Node, ctx: _Ctx, depth: int) -> None:
        """Walk command/process substitutions inside a value that is not itself run."""
        if not self.tick(depth):
            return
        if node.type in ("command_substitution", "process_substitution"):
            self.word(node, ctx, depth)
            return
        for child in node.named_children:
            self.nested_subst(child, ctx, depth + 1)

    # -- redirections and here-docs --------------------------------------------------------------
    def redirected(
        self, node: Node, ctx: _Ctx, depth: int, stdin: _Data | None, *, piped: bool, background: bool
    ) -> _Data | None:
        body = node.child_by_field_name("body")
        redirects: list[str] = []
        writes: list[str] = []
        stages: list[Node] = []
        after: list[Node] = []
        for child in node.children:
            if child is body or child == body:
                continue
            if child.type in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
                data = self.redirect(child, ctx, depth, redirects, writes, stages, after)
                if data is not None:
                    stdin = data
        if body is None:
            return None
        out = self.stmt(body, ctx, depth + 1, stdin, redirects, piped=piped, background=background)
        if out is not None and writes:
            for path in writes:
                self.write_file(path, out.data)
        if stages:
            out = self.pipeline(stages, ctx, depth, out, first_piped=True)
        for extra in after:
            self.stmt(extra, ctx, depth + 1)
        return None if writes else out

    def redirect(
        self,
        node: Node,
        ctx: _Ctx,
        depth: int,
        targets: list[str],
        writes: list[str],
        stages: list[Node],
        after: list[Node],
    ) -> _Data | None:
        t = node.type
        if t == "herestring_redirect":
            for child in node.named_children:
                text, _ = self.word(child, ctx, depth + 1)
                return _Data((text + "\n").encode("utf-8", "replace"), via="heredoc")
            return None
        if t == "heredoc_redirect":
            start = node.child_by_field_name("heredoc_start") if False else None
            body_text = ""
            quoted = False
            strip_tabs = False
            for child in node.children:
                ct = child.type
                if ct == "heredoc_start":
                    start = child
                    quoted = any(q in child.text for q in (b"'", b'"', b"\\"))
                elif ct == "<<-":
                    strip_tabs = True
                elif ct == "heredoc_body":
                    body_text = child.text.decode("utf-8", "replace")
                elif ct == "file_redirect":
                    self.redirect(child, ctx, depth, targets, writes, stages, after)
                elif ct == "pipeline":
                    _split_pipeline_tail(child, stages, after)
                elif ct == "list":
                    _split_list_tail(child, stages, after)
                elif child.is_named and ct not in ("heredoc_end", "heredoc_content"):
                    after.append(child)
            del start
            if strip_tabs:
                body_text = "\n".join(line.lstrip("\t") for line in body_text.split("\n"))
            if not quoted:
                body_text = _expand_vars(body_text, ctx.env)
            return _Data(body_text.encode("utf-8", "replace"), via="heredoc")
        # file_redirect
        op = ""
        target: str | None = None
        for child in node.children:
            if child.type == "file_descriptor":
                continue
            if not child.is_named and target is None:
                op += child.type
                continue
            if child.type == "ERROR":
                op += child.text.decode("utf-8", "replace")
                continue
            if target is None:
                if child.type == "number" and op in (">&", "<&"):
                    return None
                target, _ = self.word(child, ctx, depth + 1)
        if target is None or target == "-" or (op in (">&", "<&") and target.isdigit()):
            return None
        targets.append(target)
        if ">" in op and op != "<>" and target not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            writes.append(target)
        return None

    def write_file(self, path: str, data: bytes) -> None:
        if path.startswith("/dev/"):
            return
        text = dec.to_text(data[:MAX_FILE_BYTES])
        self.out.written_files[path] = (
            self.out.written_files.get(path, "") + text if path in self.out.written_files else text
        )
        self.known_files[path] = self.out.written_files[path]

    # -- pipelines -------------------------------------------------------------------------------
    def pipeline(
        self, stages: list[Node], ctx: _Ctx, depth: int, stdin: _Data | None, *, first_piped: bool = False
    ) -> _Data | None:
        data = stdin
        prev_names: list[str] = []
        n = len(stages)
        for i, stage in enumerate(stages):
            if stage.type in ("|", "|&"):
                continue
            before = len(self.out.commands)
            data_in = data
            data = self.stmt(stage, ctx, depth + 1, data, piped=n > 1 or first_piped)
            new = self.out.commands[before:]
            if (i > 0 or first_piped) and data_in is None and new:
                head = new[0]
                if _is_interpreter_reading_stdin(head.argv):
                    self.feature("pipe_to_interpreter", interpreter=head.name, after=",".join(prev_names[-3:]))
                    if any(p in _DOWNLOADERS for p in prev_names):
                        self.feature("download_exec")
            prev_names = [c.name for c in new] or prev_names
        return data

    # -- simple commands -------------------------------------------------------------------------
    def command(
        self,
        node: Node,
        ctx: _Ctx,
        depth: int,
        stdin: _Data | None,
        redirects: list[str],
        *,
        piped: bool,
        background: bool,
    ) -> _Data | None:
        argv: list[str] = []
        decoded = False
        obfuscated = False
        from_var = False
        redirects = list(redirects)
        writes: list[str] = []
        stages: list[Node] = []
        after: list[Node] = []
        assignments: list[Node] = []
        for child in node.children:
            ct = child.type
            if ct == "variable_assignment":
                assignments.append(child)
                continue
            if ct in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
                data = self.redirect(child, ctx, depth, redirects, writes, stages, after)
                if data is not None:
                    stdin = data
                continue
            if not child.is_named or ct == "comment":
                continue
            target = child.named_children[0] if ct == "command_name" and child.named_children else child
            flags: set[str] = set()
            text, flags = self.word(target, ctx, depth + 1)
            if "decoded" in flags:
                decoded = True
            if not argv:
                obfuscated = "obfuscated" in flags
                from_var = "expanded" in flags
            if "split" in flags:
                argv.extend(text.split())
            else:
                argv.append(text)
        for a in assignments:
            self.assign(a, ctx.child(env=dict(ctx.env)), depth, record=True)
        if not argv:
            return None
        name = posixpath.basename(argv[0]) or argv[0]
        if obfuscated:
            self.feature("obfuscated_command_name", name=name)
        if from_var:
            self.feature("variable_command_name", name=name)
        if name in ctx.fn_stack:
            self.feature("recursive_function", name=name)
            if piped or background:
                self.feature("fork_bomb", name=name)
        if ctx.in_loop and (name in _NET_TOOLS or any(r.startswith("/dev/tcp/") for r in redirects)):
            self.feature("network_loop", name=name)
        self.emit(name, argv, redirects, ctx.source)
        out = self.expand(argv, ctx, stdin, redirects, depth + 1, decoded=decoded)
        if out is not None and writes:
            for path in writes:
                self.write_file(path, out.data)
            out = None
        if stages:
            out = self.pipeline(stages, ctx, depth, out, first_piped=True)
        for extra in after:
            self.stmt(extra, ctx, depth + 1)
        return out

    # -- words -----------------------------------------------------------------------------------
    def word(self, node: Node, ctx: _Ctx, depth: int, quoted: bool = False) -> tuple[str, set[str]]:
        flags: set[str] = set()
        text = self._word(node, ctx, depth, flags, quoted)
        return text, flags

    def _word(self, node: Node, ctx: _Ctx, depth: int, flags: set[str], quoted: bool) -> str:
        if not self.tick(depth):
            return node.text.decode("utf-8", "replace")
        t = node.type
        raw = node.text.decode("utf-8", "replace")
        if t == "word" and "\\" not in raw:
            return raw
        if t in ("word", "number"):
            if "\\" in raw:
                if raw.count("\\") > 1 or not raw.startswith("\\"):
                    flags.add("obfuscated")
                return re.sub(r"\\\n|\\(.)", lambda m: m.group(1) or "", raw)
            return raw
        if t == "raw_string":
            flags.add("quoted")
            return raw[1:-1]
        if t == "ansi_c_string":
            flags.add("quoted")
            decoded = dec.decode_ansi_c(raw[2:-1])
            if decoded != raw[2:-1]:
                flags.add("obfuscated")
                self.feature("ansi_c_quoting")
            return decoded
        if t in ("string", "translated_string"):
            flags.add("quoted")
            parts: list[str] = []
            for child in node.children:
                if child.type in ('"', '$"'):
                    continue
                if child.type == "string_content":
                    parts.append(
                        re.sub(
                            r"\\([\\\"$`\n])",
                            lambda m: "" if m.group(1) == "\n" else m.group(1),
                            child.text.decode("utf-8", "replace"),
                        )
                    )
                else:
                    parts.append(self._word(child, ctx, depth + 1, flags, True))
            # text between children (tree-sitter leaves plain spaces out of string_content at times)
            if not any(c.type == "string_content" for c in node.children) and not parts:
                return raw[1:-1]
            return _fill_gaps(node, parts, raw)
        if t == "concatenation":
            pieces = []
            kinds = set()
            for child in node.children:
                kinds.add(child.type)
                pieces.append(self._word(child, ctx, depth + 1, flags, quoted))
            if kinds & {"raw_string", "string", "ansi_c_string"} and len(pieces) > 1:
                flags.add("obfuscated")
            return "".join(pieces)
        if t in ("simple_expansion", "expansion"):
            return self._expansion(node, ctx, depth, flags, quoted, raw)
        if t == "command_substitution":
            inner = ctx.child(source="subst" if ctx.source == "direct" else ctx.source)
            stmts = [c for c in node.named_children if c.type != "comment"]
            out = None
            if len(stmts) == 1:
                out = self.stmt(stmts[0], inner, depth + 1)
            else:
                for s in stmts:
                    out = self.stmt(s, inner, depth + 1)
            if stmts and stmts[0].type == "file_redirect":  # $(<file)
                return raw
            if out is not None:
                if out.decoded:
                    flags.add("decoded")
                if not quoted:
                    flags.add("split")
                flags.add("expanded")
                return dec.to_text(out.data).rstrip("\n")
            return raw
        if t == "process_substitution":
            inner = ctx.child(source="subst" if ctx.source == "direct" else ctx.source)
            for s in node.named_children:
                self.stmt(s, inner, depth + 1)
            return raw
        if t == "array":
            return " ".join(self._word(c, ctx, depth + 1, flags, quoted) for c in node.named_children)
        if t == "command_name":
            return "".join(self._word(c, ctx, depth + 1, flags, quoted) for c in node.named_children) or raw
        return raw

    def _expansion(self, node: Node, ctx: _Ctx, depth: int, flags: set[str], quoted: bool, raw: str) -> str:
        names = [c for c in node.named_children if c.type in ("variable_name", "special_variable_name")]
        if not names:
            return raw
        name = names[0].text.decode("utf-8", "replace")
        extra = [c for c in node.children if c is not names[0] and c.type not in ("$", "${", "}")]
        value: str | None
        if name == "IFS":
            value = " "
            self.feature("ifs_substitution")
        else:
            value = ctx.env.get(name)
        if extra:
            op = extra[0].type
            if op in (":-", "-", ":=", "="):
                if value is None or (op.startswith(":") and value == ""):
                    value = "".join(self._word(c, ctx, depth + 1, flags, quoted) for c in extra[1:] if c.is_named)
            elif name == "IFS":
                value = " "
            else:
                return raw
        if value is None:
            return raw
        flags.add("expanded")
        if not quoted and any(ch.isspace() for ch in value):
            flags.add("split")
        return value

    # -- what a simple command runs --------------------------------------------------------------
    def expand(
        self, argv: list[str], ctx: _Ctx, stdin: _Data | None, redirects: list[str], depth: int, *, decoded: bool
    ) -> _Data | None:
        """Follow wrappers and interpreters; return the command's static stdout if known."""
        if depth > MAX_DEPTH:
            self.error(f"nesting deeper than {MAX_DEPTH}; rest not analysed")
            return None
        name = posixpath.basename(argv[0]) or argv[0]
        args = argv[1:]
        shell_source = "base64" if decoded else "bash -c"

        inner, shell_string = _unwrap(name, argv)
        if shell_string is not None:
            self.analyze_text(shell_string, ctx.child(source=shell_source, fn_stack=()), depth + 1)
        if inner:
            for sub in inner:
                sub_name = posixpath.basename(sub[0]) or sub[0]
                self.emit(sub_name, sub, redirects, ctx.source)
            return (
                self.expand(inner[-1], ctx, stdin, redirects, depth + 1, decoded=decoded) if len(inner) == 1 else None
            )
        if shell_string is not None:
            return None

        if name in SHELLS:
            code, script, reads_stdin = _shell_invocation(args)
            if code is not None and _is_dynamic(code):
                self.feature("dynamic_shell_code", code=code[:256])
            elif code is not None:
                self.analyze_text(code, ctx.child(source=shell_source, fn_stack=()), depth + 1)
            elif script is not None:
                self.run_file(script, "shell", ctx, depth)
            elif reads_stdin and stdin is not None:
                src = "base64" if stdin.decoded else ("heredoc" if stdin.via == "heredoc" else "bash -c")
                self.analyze_text(dec.to_text(stdin.data), ctx.child(source=src, fn_stack=()), depth + 1)
            return None
        if name in ("eval", "source", "."):
            if name == "eval" and _is_dynamic(" ".join(args)):
                self.feature("dynamic_shell_code", code=" ".join(args)[:256])
            elif name == "eval":
                self.analyze_text(" ".join(args), ctx.child(source="eval" if not decoded else "base64"), depth + 1)
            elif args:
                self.run_file(args[0], "shell", ctx, depth)
            return None
        lang = _script_lang(name)
        if lang is not None:
            code, script, reads_stdin = _interpreter_invocation(lang, args)
            if code is not None:
                self.lang_scan(lang, code, ctx, depth, _lang_source(lang))
            elif script is not None:
                self.run_file(script, lang, ctx, depth)
            elif reads_stdin and stdin is not None:
                src = "base64" if stdin.decoded else _lang_source(lang)
                self.lang_scan(lang, dec.to_text(stdin.data), ctx, depth, src)
            if lang == "python" and "-m" in args:
                mod_i = args.index("-m") + 1
                if mod_i < len(args):
                    self.feature("python_module", module=args[mod_i])
            return None
        if name == "crontab" and stdin is not None and (not args or args[-1] == "-"):
            self.file_into_command("crontab:-", dec.to_text(stdin.data), ctx, depth, kind="crontab")
            return None
        # a known (written) file run directly, or handed to a program as an argument
        if "/" in argv[0] and self.lookup_file(argv[0]):
            self.run_file(argv[0], None, ctx, depth)
        for arg in args:
            candidate = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
            if candidate and not candidate.startswith("-") and self.lookup_file(candidate):
                self.run_file(candidate, None, ctx, depth)
        return self.static_output(name, args, stdin)

    def lang_scan(self, lang: str, code: str, ctx: _Ctx, depth: int, source: str) -> None:
        scan = scan_script(lang, code)
        self.merge_scan(scan, ctx, depth, source)

    def merge_scan(self, scan: LangScan, ctx: _Ctx, depth: int, source: str) -> None:
        for f in scan.features:
            self.feature(f)
        for finding in scan.findings:
            if finding not in self.out.findings and len(self.out.findings) < 200:
                self.out.findings.append(dict(finding, source=source))
        for url in scan.urls:
            self._add(self.out.urls, url)
        for h in scan.hosts:
            self.host(h)
        if scan.parse_error:
            self.feature("script_parse_error", lang=scan.lang)
        for text in scan.shell[:32]:
            # strings pulled out of non-Python code by regular expressions are guesses: no syntax errors for them
            self.analyze_text(text, ctx.child(source=source, fn_stack=()), depth + 1, quiet=scan.lang != "python")
        for argv in scan.argvs[:32]:
            argv = [a for a in argv if isinstance(a, str)]
            if argv:
                name = posixpath.basename(argv[0]) or argv[0]
                if self.emit(name, argv, [], source) is not None:
                    self.expand(argv, ctx.child(source=source), None, [], depth + 1, decoded=False)

    def run_file(self, path: str, lang: str | None, ctx: _Ctx, depth: int) -> None:
        found = self.lookup_file(path)
        if found is None:
            return
        key, content = found
        self.file_into_command(key, content, ctx, depth, kind=lang)

    def file_into_command(self, path: str, content: str, ctx: _Ctx, depth: int, *, kind: str | None) -> None:
        if path in self.analyzed_files:
            return
        self.analyzed_files.add(path)
        fa = _analyze_file_content(content, path, kind=kind, depth=depth + 1)
        for cmd in fa.commands:
            self.emit(cmd.name, cmd.argv, cmd.redirects, cmd.source)
        for f in fa.features:
            self.feature(f)
        for finding in fa.findings:
            item = dict(finding, path=path)
            if item not in self.out.findings and len(self.out.findings) < 200:
                self.out.findings.append(item)
        for u in fa.urls:
            self._add(self.out.urls, u)
        for h in fa.hosts:
            self.host(h)

    def static_output(self, name: str, args: list[str], stdin: _Data | None) -> _Data | None:
        """Bytes a data-only command prints, when the analyzer can know them."""
        if name == "echo":
            flags = ""
            while args and re.fullmatch(r"-[neE]+", args[0]):
                flags += args[0][1:]
                args = args[1:]
            text = " ".join(args)
            if "e" in flags:
                text = dec.decode_echo_escapes(text)
            return _Data((text + ("" if "n" in flags else "\n")).encode("utf-8", "replace"))
        if name == "printf":
            if args and args[0] == "-v":
                return None
            if args and args[0] == "--":
                args = args[1:]
            return _Data(dec.printf_output(args).encode("utf-8", "replace"))
        files = [a for a in args if not a.startswith("-") or a == "-"]
        opts = [a for a in args if a.startswith("-") and a != "-"]
        data = self._input(files, stdin)
        if name in ("cat", "tac") and not opts:
            if name == "tac" and data is not None:
                return _Data(b"\n".join(reversed(data.data.rstrip(b"\n").split(b"\n"))) + b"\n", data.decoded)
            return data
        if data is None:
            return None
        joined = " ".join(opts)
        if name in ("base64", "base32", "basenc") or (name == "openssl" and ("base64" in args or "-base64" in args)):
            data_src = self._input([a for a in files if a not in ("base64", "enc")], stdin) or data
            if not re.search(r"(^|\s)(-\w*[dD]\w*|--decode)\b", joined):
                return None
            raw = dec.b32decode_loose(data_src.data) if name == "base32" else dec.b64decode_loose(data_src.data)
            if raw is None:
                return None
            self.feature("base64_decode")
            return _Data(raw, decoded=True)
        if name == "xxd" and re.search(r"-\w*r", joined):
            if re.search(r"-\w*p", joined):
                raw = dec.hexdecode_loose(data.data)
            else:
                lines = [
                    re.sub(r"^[0-9a-fA-F]+:\s*", "", ln).split("  ")[0] for ln in dec.to_text(data.data).split("\n")
                ]
                raw = dec.hexdecode_loose("".join(lines).encode())
            return _Data(raw, decoded=True) if raw is not None else None
        if name == "rev":
            lines = dec.to_text(data.data).rstrip("\n").split("\n")
            return _Data(("\n".join(ln[::-1] for ln in lines) + "\n").encode("utf-8"), decoded=True)
        if name == "tr" and len(files) == 2 and not opts:
            raw = dec.tr_translate(data.data, files[0], files[1])
            return _Data(raw, decoded=True) if raw is not None else None
        if name in ("gunzip", "zcat") or (name in ("gzip", "pigz") and re.search(r"-\w*d|--decompress", joined)):
            raw = dec.gunzip_loose(data.data)
            return _Data(raw, decoded=True) if raw is not None else None
        if name in ("bzip2", "bunzip2", "bzcat", "xz", "unxz", "xzcat", "lzma"):
            try:
                raw = bz2.decompress(data.data) if name.startswith("b") else lzma.decompress(data.data)
            except (OSError, ValueError, EOFError, lzma.LZMAError):
                return None
            return _Data(raw, decoded=True)
        if name == "tee":
            for f in files:
                if f != "-":
                    self.write_file(f, data.data)
            return data
        return None

    def _input(self, files: list[str], stdin: _Data | None) -> _Data | None:
        if not files or files == ["-"]:
            return stdin
        parts: list[bytes] = []
        for f in files:
            if f == "-":
                if stdin is None:
                    return None
                parts.append(stdin.data)
                continue
            found = self.lookup_file(f)
            if found is None:
                return None
            parts.append(found[1].encode("utf-8", "replace"))
        return _Data(b"".join(parts))


# -- helpers ---------------------------------------------------------------------------------------

_VALUE_TYPES = frozenset(
    {
        "word",
        "string",
        "raw_string",
        "ansi_c_string",
        "concatenation",
        "simple_expansion",
        "expansion",
        "number",
        "arithmetic_expansion",
        "brace_expression",
        "variable_name",
        "translated_string",
        "command_substitution",
        "process_substitution",
        "extglob_pattern",
        "regex",
    }
)


def _fill_gaps(node: Node, parts: list[str], raw: str) -> str:
    """Rebuild a double-quoted string, keeping text tree-sitter did not give a node (e.g. spaces)."""
    base = node.start_byte
    raw_b = node.text
    out: list[str] = []
    pos = 1  # after the opening quote
    kids = [c for c in node.children if c.type not in ('"', '$"')]
    for idx, child in enumerate(kids):
        start, end = child.start_byte - base, child.end_byte - base
        if start > pos:
            out.append(raw_b[pos:start].decode("utf-8", "replace"))
        out.append(parts[idx] if idx < len(parts) else child.text.decode("utf-8", "replace"))
        pos = end
    closing = len(raw_b) - 1 if raw_b.endswith(b'"') and len(raw_b) > 1 else len(raw_b)
    if closing > pos:
        out.append(raw_b[pos:closing].decode("utf-8", "replace"))
    return "".join(out)


def _split_pipeline_tail(node: Node, stages: list[Node], after: list[Node]) -> None:
    """tree-sitter nests ``cat <<EOF | a | b && c`` oddly; flatten it into pipe stages and later statements."""
    for child in node.named_children:
        if child.type == "list":
            _split_list_tail(child, stages, after)
        elif child.type == "pipeline":
            _split_pipeline_tail(child, stages, after)
        elif child.type != "comment":
            stages.append(child)


def _split_list_tail(node: Node, stages: list[Node], after: list[Node]) -> None:
    named = [c for c in node.named_children if c.type != "comment"]
    if not named:
        return
    first, rest = named[0], named[1:]
    if not stages and node.children and node.children[0].type in ("&&", "||", ";"):
        after.extend(named)
        return
    if first.type == "pipeline":
        _split_pipeline_tail(first, stages, after)
    elif first.type == "list":
        _split_list_tail(first, stages, after)
    else:
        stages.append(first)
    after.extend(rest)


def _is_dynamic(code: str) -> bool:
    """A shell string that is only an unresolved command substitution (``sh -c "$(curl ...)"``)."""
    code = code.strip()
    return (code.startswith("$(") and code.endswith(")")) or (
        code.startswith("`") and code.endswith("`") and len(code) > 1
    )


def _first_error(root: Node) -> str | None:
    """Describe the first real syntax error; ignores the ``N<>file`` redirect tree-sitter-bash cannot parse."""
    stack = [root]
    visited = 0
    while stack and visited < 100_000:
        node = stack.pop()
        visited += 1
        if not node.has_error:
            continue
        if node.is_missing:
            row, col = node.start_point
            return f"at line {row + 1} column {col + 1}: missing {node.type!r}"
        if node.type == "ERROR":
            prev = node.prev_sibling
            parent = node.parent
            if (
                node.text == b">"
                and prev is not None
                and prev.type == "<"
                and parent is not None
                and parent.type == "file_redirect"
            ):
                continue
            row, col = node.start_point
            snippet = node.text[:30].decode("utf-8", "replace")
            return f"at line {row + 1} column {col + 1} near {snippet!r}"
        stack.extend(reversed(node.children))
    return None


def _expand_vars(text: str, env: Mapping[str, str]) -> str:
    if "$" not in text or not env:
        return text
    return _VAR_IN_TEXT.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def _script_lang(name: str) -> str | None:
    if _PYTHON_RE.match(name):
        return "python"
    if name in _AWKS:
        return "awk"
    if name in ("nodejs", "node"):
        return "node"
    base = re.sub(r"[\d.]+$", "", name)
    if base in _LANG_CODE_OPTS:
        return base
    return None


def _lang_source(lang: str) -> str:
    return {
        "python": "python -c",
        "perl": "perl -e",
        "ruby": "ruby -e",
        "php": "php -r",
        "node": "node -e",
        "lua": "lua -e",
        "awk": "awk",
    }.get(lang, f"{lang} -e")


def _shell_invocation(args: list[str]) -> tuple[str | None, str | None, bool]:
    """(command string for -c, script path, reads stdin) for ``sh``/``bash``... arguments."""
    has_c = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if a.startswith("--"):
            i += 1
            continue
        if a.startswith(("-", "+")) and len(a) > 1:
            if "c" in a[1:]:
                has_c = True
            if a == "-s" or ("s" in a[1:] and a.startswith("-")):
                return None, None, True
            i += 1
            continue
        break
    rest = args[i:]
    if has_c:
        return (rest[0] if rest else ""), None, False
    if rest and rest[0] != "-":
        return None, rest[0], False
    return None, None, True


def _interpreter_invocation(lang: str, args: list[str]) -> tuple[str | None, str | None, bool]:
    """(inline code, script path, reads stdin) for python/perl/ruby/php/node/lua/awk arguments."""
    if lang == "awk":
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-F", "-v", "-f") or (a.startswith("-") and a[1:2] in ("F", "v") and len(a) == 2):
                if a == "-f" and i + 1 < len(args):
                    return None, args[i + 1], False
                i += 2
                continue
            if a.startswith("-") and len(a) > 1:
                i += 1
                continue
            return a, None, False
        return None, None, False
    code_opts = ("-c",) if lang == "python" else _LANG_CODE_OPTS.get(lang, ("-e",))
    with_arg = {
        "python": ("-W", "-X", "-m", "-Q"),
        "perl": ("-I", "-M", "-m"),
        "ruby": ("-I", "-r"),
        "php": ("-d", "-c", "-f"),
    }.get(lang, ())
    i = 0
    while i < len(args):
        a = args[i]
        if a in code_opts:
            return (args[i + 1] if i + 1 < len(args) else ""), None, False
        for opt in code_opts:
            if len(opt) == 2 and a.startswith(opt) and len(a) > 2 and not a.startswith("--"):
                return a[2:], None, False
        if lang == "python" and re.fullmatch(r"-[BdEhiIOqsSuvx]+c", a):
            return (args[i + 1] if i + 1 < len(args) else ""), None, False
        if lang == "perl" and (m := re.match(r"-[a-zA-DF-Zac-df-z0-9]*?[eE](.*)$", a, re.S)) and not a.startswith("-F"):
            if m.group(1):
                return m.group(1), None, False
            return (args[i + 1] if i + 1 < len(args) else ""), None, False
        if lang == "php" and a == "-f":
            return None, (args[i + 1] if i + 1 < len(args) else None), False
        if lang == "python" and a.startswith("-m"):
            return None, None, False
        if a in with_arg:
            i += 2
            continue
        if a == "-":
            return None, None, True
        if a.startswith("-") and len(a) > 1:
            i += 1
            continue
        return None, a, False
    return None, None, True


def _is_interpreter_reading_stdin(argv: list[str]) -> bool:
    name = posixpath.basename(argv[0]) if argv else ""
    if name in SHELLS:
        return _shell_invocation(argv[1:])[2]
    lang = _script_lang(name)
    if lang is not None and lang != "awk":
        return _interpreter_invocation(lang, argv[1:])[2]
    return False


# wrapper name -> (options that take an argument, positional arguments before the command)
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (
        frozenset(
            {
                "-u",
                "-g",
                "-h",
                "-p",
                "-C",
                "-D",
                "-r",
                "-t",
                "-U",
                "-T",
                "--user",
                "--group",
                "--host",
                "--prompt",
                "--chdir",
                "--role",
                "--type",
                "--other-user",
                "--close-from",
            }
        ),
        0,
    ),
    "doas": (frozenset({"-u", "-C"}), 0),
    "env": (frozenset({"-u", "-C", "--unset", "--chdir"}), 0),
    "timeout": (frozenset({"-s", "-k", "--signal", "--kill-after"}), 1),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}), 0),
    "setsid": (frozenset(), 0),
    "nohup": (frozenset(), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), 0),
    "time": (frozenset({"-f", "-o", "--format", "--output"}), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "chroot": (frozenset({"--userspec", "--groups"}), 1),
    "taskset": (frozenset(), 1),
    "strace": (frozenset({"-o", "-e", "-s", "-a", "-E", "-u", "-P", "-O", "-S", "-X", "-b", "-I"}), 0),
    "ltrace": (frozenset({"-o", "-e", "-s", "-a", "-E", "-u", "-n", "-l"}), 0),
    "unshare": (
        frozenset(
            {
                "-S",
                "-G",
                "-R",
                "-w",
                "--setuid",
                "--setgid",
                "--root",
                "--wd",
                "--propagation",
                "--map-user",
                "--map-group",
            }
        ),
        0,
    ),
    "nsenter": (frozenset({"-t", "--target", "-S", "-G", "--setuid", "--setgid"}), 0),
    "proxychains": (frozenset({"-f"}), 0),
    "proxychains4": (frozenset({"-f"}), 0),
    "torsocks": (frozenset({"-u", "-p", "-a", "-P"}), 0),
    "torify": (frozenset(), 0),
    "tsocks": (frozenset(), 0),
    "busybox": (frozenset(), 0),
    "toybox": (frozenset(), 0),
    "chronic": (frozenset(), 0),
    "unbuffer": (frozenset(), 0),
    "caffeinate": (frozenset(), 0),
    "firejail": (frozenset(), 0),
    "xargs": (
        frozenset(
            {
                "-I",
                "-n",
                "-P",
                "-L",
                "-d",
                "-E",
                "-s",
                "-a",
                "--max-procs",
                "--max-args",
                "--delimiter",
                "--arg-file",
                "--max-lines",
                "--eof",
                "--max-chars",
                "--process-slot-var",
            }
        ),
        0,
    ),
    "flock": (frozenset({"-w", "--timeout", "-E", "--conflict-exit-code"}), 1),
    "watch": (frozenset({"-n", "--interval", "-q", "--equexit"}), 0),
    "runuser": (frozenset({"-u", "-g", "-G", "--user", "--group"}), 0),
    "su": (frozenset({"-s", "--shell", "-g", "-G", "--group"}), 0),
    "script": (frozenset({"-t", "-T", "-O", "-I", "-B", "-E", "--timing", "--log-out", "--log-in"}), 0),
    "catchsegv": (frozenset(), 0),
    "daemonize": (frozenset({"-c", "-p", "-l", "-u", "-e", "-o"}), 0),
    "start-stop-daemon": (frozenset(), 0),
    "parallel": (frozenset({"-j", "--jobs"}), 0),
}
_SHELL_STRING_OPT = {
    "su": ("-c", "--command"),
    "runuser": ("-c", "--command"),
    "script": ("-c", "--command"),
    "flock": ("-c", "--command"),
}


def _unwrap(name: str, argv: list[str]) -> tuple[list[list[str]], str | None]:
    """Commands a wrapper would run (``sudo X``, ``find -exec X``...), and a shell string it would run."""
    if name == "find":
        found: list[list[str]] = []
        i = 1
        while i < len(argv):
            if argv[i] in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(argv) and argv[j] not in (";", "+"):
                    j += 1
                if j > i + 1:
                    found.append(argv[i + 1 : j])
                i = j
            i += 1
        return found, None
    spec = _WRAPPERS.get(name)
    if spec is None:
        return [], None
    with_arg, positional = spec
    args = argv[1:]
    if name == "start-stop-daemon":
        for i, a in enumerate(args):
            if a in ("--exec", "-x", "--startas", "-a") and i + 1 < len(args):
                rest = args[args.index("--") + 1 :] if "--" in args else []
                return [[args[i + 1], *rest]], None
        return [], None
    if name == "command" and any(a in ("-v", "-V") for a in args[:2]):
        return [], None
    if name in ("strace", "ltrace") and "-p" in args:
        return [], None
    if name == "watch":
        i = _skip_options(args, with_arg)
        return [], (" ".join(args[i:]) or None)
    if name in _SHELL_STRING_OPT:
        opts = _SHELL_STRING_OPT[name]
        for i, a in enumerate(args):
            if a in opts and i + 1 < len(args):
                return [], args[i + 1]
            if a.startswith("--command="):
                return [], a.split("=", 1)[1]
        if name == "su":
            return [], None
    if name == "env":
        for i, a in enumerate(args):
            if a in ("-S", "--split-string") and i + 1 < len(args):
                try:
                    return [[*shlex.split(args[i + 1]), *args[i + 2 :]]], None
                except ValueError:
                    return [args[i + 1].split() + args[i + 2 :]], None
            if a.startswith("-S") and len(a) > 2:
                try:
                    return [[*shlex.split(a[2:]), *args[i + 1 :]]], None
                except ValueError:
                    return [], None
    if name == "nice" and args and re.fullmatch(r"-\d+", args[0]):
        args = args[1:]
    i = _skip_options(args, with_arg)
    if name in ("sudo", "env", "doas"):
        while i < len(args) and re.match(r"^[A-Za-z_]\w*=", args[i]):
            i += 1
    i += positional
    rest = args[i:]
    if name == "xargs" and not rest:
        rest = ["echo"]
    if name == "busybox" and rest and rest[0] in ("--install", "--list"):
        return [], None
    return ([rest] if rest else []), None


def _skip_options(args: list[str], with_arg: frozenset[str]) -> int:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return i + 1
        if a.startswith("-") and len(a) > 1:
            if a in with_arg:
                i += 2
                continue
            i += 1
            continue
        return i
    return i


# -- file scanning ---------------------------------------------------------------------------------

_CRON_LINE = re.compile(r"^\s*(?:@\w+|(?:[\d*/,\-?LW#A-Za-z]+\s+){4}[\d*/,\-?LW#A-Za-z]+)\s+(?:(\w[\w.-]*)\s+)?(.+)$")
_SYSTEMD_EXEC = re.compile(r"^\s*(Exec(?:Start|StartPre|StartPost|Stop|StopPost|Reload|Condition))\s*=\s*(.*)$", re.M)
_MONERO_WALLET = re.compile(r"\b[48][0-9AB][1-9A-HJ-NP-Za-km-z]{93}\b")
_MINER_KEYS = {
    "pools",
    "donate-level",
    "donate_level",
    "algo",
    "coin",
    "rig-id",
    "randomx",
    "cpu",
    "opencl",
    "cuda",
    "nicehash",
    "keepalive",
    "wallet",
    "worker",
    "pool",
    "stratum",
}
_SSH_KEY = re.compile(
    r"^\s*(?:[\w,=\"-]+\s+)?(ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-\S+|sk-\S+)\s+[A-Za-z0-9+/=]{40,}", re.M
)
_KNOWN_USERS = {"root", "nobody", "daemon", "www-data", "ubuntu", "user", "admin"}


def _detect_kind(content: str, path: str) -> str:
    base = posixpath.basename(path)
    first = content.lstrip()[:200]
    ext = posixpath.splitext(base)[1].lower()
    if first.startswith("#!"):
        line = first.split("\n", 1)[0]
        for lang in ("python", "perl", "ruby", "php", "node", "lua", "awk"):
            if lang in line:
                return lang
        return "shell"
    if ext in (".sh", ".bash", ".zsh", ".ksh") or base in (
        ".bashrc",
        ".profile",
        ".bash_profile",
        ".zshrc",
        ".bash_login",
        ".zprofile",
        "rc.local",
        ".bash_logout",
    ):
        return "shell"
    if ext in (".py", ".pyw"):
        return "python"
    by_ext = {
        ".pl": "perl",
        ".pm": "perl",
        ".rb": "ruby",
        ".php": "php",
        ".js": "node",
        ".mjs": "node",
        ".lua": "lua",
        ".awk": "awk",
    }
    if ext in by_ext:
        return by_ext[ext]
    if ext in (".service", ".timer", ".socket", ".path") or re.search(r"^\[(Unit|Service|Install)\]", content, re.M):
        return "systemd"
    if "cron" in path or base in ("crontab",) or path.startswith("crontab:"):
        return "crontab"
    if base == "authorized_keys" or base.startswith("authorized_keys"):
        return "authorized_keys"
    if ext in (".yaml", ".yml", ".toml", ".ini", ".conf", ".cfg", ".env", ".txt"):
        return "config"
    if ext == ".json" or first.startswith(("{", "[")):
        return "json"
    if base in ("ld.so.preload",):
        return "ld_preload"
    return "text"


def _walk_json(value: Any, out: list[tuple[str, str]], key: str = "", depth: int = 0) -> None:
    if depth > 40 or len(out) > 5000:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _walk_json(v, out, str(k), depth + 1)
    elif isinstance(value, list):
        for v in value:
            _walk_json(v, out, key, depth + 1)
    elif value is not None:
        out.append((key, str(value)))


def _analyze_file_content(content: str, path: str, *, kind: str | None = None, depth: int = 0) -> FileAnalysis:
    if kind is None or kind not in ("shell", "python", "perl", "ruby", "php", "node", "lua", "awk", "crontab"):
        kind = _detect_kind(content, path)
    fa = FileAnalysis(path=path, kind=kind)
    source = f"file:{path}"
    truncated = False
    if len(content) > MAX_FILE_BYTES:
        content = content[:MAX_FILE_BYTES]
        truncated = True
    content = content.replace("\x00", "")

    def absorb(analysis: CommandAnalysis) -> None:
        for c in analysis.commands:
            if c.source == "direct":
                c.source = source
            fa.commands.append(c)
        for f in analysis.features:
            if f not in fa.features:
                fa.features.append(f)
        fa.findings.extend(f for f in analysis.findings if f not in fa.findings)
        fa.urls.extend(u for u in analysis.urls if u not in fa.urls)
        fa.hosts.extend(h for h in analysis.hosts if h not in fa.hosts)
        if analysis.parse_error and not fa.parse_error:
            fa.parse_error = analysis.parse_error

    if kind == "shell":
        absorb(_analyze(content, source=source, depth=depth, limit=MAX_FILE_BYTES))
    elif kind in ("python", "perl", "ruby", "php", "node", "lua", "awk"):
        wrapper = _Analyzer(None)
        wrapper.out.command = content
        with contextlib.suppress(_Budget):
            wrapper.lang_scan(kind, content, _Ctx(env={}, funcs=set(), source=source), depth, source)
        wrapper.out.parse_error = "; ".join(wrapper.errors) or None
        absorb(wrapper.out)
    elif kind == "crontab":
        for line in content.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = _CRON_LINE.match(line)
            if not m:
                if re.match(r"^\s*[A-Za-z_]\w*\s*=", line):
                    fa.findings.append({"kind": "cron_env", "detail": line.strip()[:512]})
                continue
            user, cmd = m.group(1), m.group(2)
            if user and user not in _KNOWN_USERS:  # no user column: the first word belongs to the command
                cmd = f"{user} {cmd}"
            fa.findings.append({"kind": "cron_entry", "detail": line.strip()[:512]})
            absorb(_analyze(cmd, source=source, depth=depth))
    elif kind == "systemd":
        fa.findings.append({"kind": "systemd_unit", "detail": posixpath.basename(path)})
        for key, value in _SYSTEMD_EXEC.findall(content):
            value = value.strip().lstrip("-@+!:")
            fa.findings.append({"kind": "systemd_exec", "detail": f"{key}={value}"[:512]})
            absorb(_analyze(value, source=source, depth=depth))
        for m in re.finditer(r"^\s*Environment\s*=\s*(.*)$", content, re.M):
            fa.findings.append({"kind": "systemd_environment", "detail": m.group(1).strip()[:512]})
    elif kind == "authorized_keys":
        fa.findings.append({"kind": "authorized_keys", "detail": str(len(_SSH_KEY.findall(content)))})
    elif kind == "ld_preload":
        fa.findings.append({"kind": "ld_preload", "detail": content.strip()[:512]})
    elif kind == "json":
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):
            data = None
            fa.parse_error = "invalid JSON"
        pairs: list[tuple[str, str]] = []
        if data is not None:
            _walk_json(data, pairs)
            keys = set()
            stack: list[Any] = [data]
            while stack and len(keys) < 2000:
                item = stack.pop()
                if isinstance(item, dict):
                    keys.update(str(k).lower() for k in item)
                    stack.extend(item.values())
                elif isinstance(item, list):
                    stack.extend(item[:1000])
            miner_keys = sorted(keys & _MINER_KEYS)
            for key, value in pairs:
                if key.lower() in ("url", "pool", "host", "server", "stratum", "address", "endpoint", "proxy"):
                    fa.findings.append({"kind": "endpoint", "key": key, "detail": value[:512]})
                    _config_endpoint(fa, value)
                if key.lower() in ("user", "wallet", "login", "username") and _MONERO_WALLET.search(value):
                    fa.findings.append({"kind": "monero_wallet", "detail": value[:120]})
            if len(miner_keys) >= 2 or ("pools" in keys and "url" in keys):
                fa.findings.append({"kind": "mining_config", "detail": ",".join(miner_keys)})
    if kind in ("config", "text", "json", "systemd", "crontab", "ld_preload", "authorized_keys"):
        _generic_indicators(fa, content)
    if truncated:
        fa.parse_error = f"file larger than {MAX_FILE_BYTES} bytes; truncated"
    return fa


def _config_endpoint(fa: FileAnalysis, value: str) -> None:
    value = value.strip()
    if "://" in value:
        if value not in fa.urls:
            fa.urls.append(value)
        value = value.split("://", 1)[1].split("/", 1)[0]
    m = _HOSTPORT_RE.match(value) or _IPV4_RE.match(value)
    if m:
        host = f"{m.group(1)}:{m.group(2)}" if m.group(2) else m.group(1)
        if host not in fa.hosts:
            fa.hosts.append(host)


def _generic_indicators(fa: FileAnalysis, content: str) -> None:
    for url in _URL_RE.findall(content[:MAX_FILE_BYTES]):
        if url not in fa.urls and len(fa.urls) < 500:
            fa.urls.append(url)
        if url.lower().startswith("stratum"):
            item = {"kind": "stratum_url", "detail": url[:512]}
            if item not in fa.findings:
                fa.findings.append(item)
    for wallet in _MONERO_WALLET.findall(content)[:5]:
        item = {"kind": "monero_wallet", "detail": wallet}
        if item not in fa.findings:
            fa.findings.append(item)
    for m in re.finditer(r"(?<![\w.-])((?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*|" + _IPV4 + r"):(\d{2,5})\b", content):
        host = f"{m.group(1)}:{m.group(2)}"
        if host not in fa.hosts and len(fa.hosts) < 500:
            fa.hosts.append(host)
    for marker in ("mining.subscribe", "mining.authorize", "mining.submit"):
        if marker in content:
            fa.findings.append({"kind": "stratum_message", "detail": marker})
            break
    for m in re.finditer(r"(?m)^\s*(?:export\s+)?(LD_PRELOAD|LD_LIBRARY_PATH|PROMPT_COMMAND)\s*=\s*(\S+)", content):
        fa.findings.append({"kind": "env_hijack", "detail": f"{m.group(1)}={m.group(2)}"[:512]})


# -- public API ------------------------------------------------------------------------------------


def _analyze(
    text: str,
    *,
    source: str = "direct",
    depth: int = 0,
    files: Mapping[str, str] | None = None,
    limit: int = MAX_INPUT_BYTES,
) -> CommandAnalysis:
    analyzer = _Analyzer(files)
    out = analyzer.out
    out.command = text if isinstance(text, str) else str(text)
    text = out.command
    if "\x00" in text:
        analyzer.error("input contains NUL bytes (removed before analysis)")
        text = text.replace("\x00", "")
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > limit:
        analyzer.error(f"input is {len(encoded)} bytes, over the {limit}-byte limit; only the first {limit} analysed")
        text = encoded[:limit].decode("utf-8", "ignore")
    ctx = _Ctx(env={}, funcs=set(), source=source)
    try:
        analyzer.analyze_text(text, ctx, depth)
        for path, content in list(out.written_files.items()):
            if path not in analyzer.analyzed_files and len(analyzer.analyzed_files) < 32:
                analyzer.file_into_command(path, content, ctx, depth + 1, kind=None)
    except _Budget:
        pass
    except RecursionError:
        analyzer.error("nesting too deep")
    out.parse_error = "; ".join(analyzer.errors)[:1000] or None
    return out


def analyze_command(text: str, *, files: Mapping[str, str] | None = None) -> CommandAnalysis:
    """Parse one shell command (or a whole script) and list every simple command it would run.

    ``files`` maps paths to contents the analyzer may consult when the command runs or hands over
    a file (``bash /tmp/x.sh``, ``./miner -c config.json``). Never raises on bad input: problems
    are reported in ``parse_error`` with a partial result.
    """
    try:
        return _analyze(text, files=files)
    except Exception as exc:  # last line of defence: a sensor must not crash on agent input
        out = CommandAnalysis(command=text if isinstance(text, str) else repr(text))
        out.parse_error = f"analyzer failure: {type(exc).__name__}: {exc}"[:500]
        return out


def analyze_file(source: str | bytes | os.PathLike[str], path: str | None = None) -> FileAnalysis:
    """Scan a script or config file the agent wrote: shell, Python (and other scripts), crontab,
    systemd unit, authorized_keys, JSON/INI miner configs.

    ``source`` is the content (str or bytes) with ``path`` naming it, or a filesystem path to read
    (at most 1 MiB is read). Returns the ``file`` event's data via ``to_event_data()``.
    """
    try:
        if isinstance(source, os.PathLike):
            file_path = os.fspath(source)
            with open(file_path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
            content = raw.decode("utf-8", "replace")
            path = path or file_path
        elif isinstance(source, bytes):
            content = source.decode("utf-8", "replace")
        else:
            content = source
        return _analyze_file_content(content, path or "<text>")
    except OSError as exc:
        return FileAnalysis(path=path or str(source), kind="unreadable", parse_error=f"cannot read: {exc}")
    except Exception as exc:
        return FileAnalysis(
            path=path or "<text>", kind="error", parse_error=f"analyzer failure: {type(exc).__name__}: {exc}"[:500]
        )
