"""Scans of code handed to script interpreters (``python -c``, ``perl -e``, ``ruby -e``, ``php -r``...).

Python code is read with Python's own ``ast`` (so aliases such as ``import socket as s`` and
``__import__('os').system`` resolve); the other languages with targeted regular expressions. A scan
reports what the code would do — socket connects/binds, fd duplication, pty spawns, process
launches, stratum mining messages — as ``features`` (``"python:socket.connect"``), ``findings``
(dicts with details such as host and port), and the shell strings / argv lists it would run, which
the caller analyses as commands. Nothing is executed.
"""

from __future__ import annotations

import ast
import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

STRATUM_MARKERS = ("mining.subscribe", "mining.authorize", "mining.submit", "mining.notify", "stratum+")
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s'\"<>`)\\]+")
_IPV4_RE = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_HOSTPORT_RE = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+:\d{1,5}$")

_SUBPROCESS_FUNCS = {
    "subprocess.call",
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec",
}
_SHELL_STRING_FUNCS = {"os.system", "os.popen", "commands.getoutput", "subprocess.getoutput", "pty.spawn"}
_SOCKET_METHODS = {"connect", "connect_ex", "bind", "listen", "accept", "send", "sendall", "recv", "sendto"}


@dataclass
class LangScan:
    """What a script scan found; ``shell`` strings and ``argvs`` are for the caller to analyse."""

    lang: str
    features: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    shell: list[str] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    parse_error: str | None = None

    def feature(self, what: str, /, **details: Any) -> None:
        name = f"{self.lang}:{what}"
        if name not in self.features:
            self.features.append(name)
        if details:
            finding = {"kind": name, **details}
            if finding not in self.findings and len(self.findings) < 200:
                self.findings.append(finding)

    def add_host(self, host: str) -> None:
        if host and host not in self.hosts and len(self.hosts) < 200:
            self.hosts.append(host)

    def scan_strings(self, strings: list[str]) -> None:
        """Indicators found in any literal: URLs, IPs, stratum methods, shell paths."""
        for s in strings:
            if len(s) > 65536:
                s = s[:65536]
            for marker in STRATUM_MARKERS:
                if marker in s:
                    self.feature("stratum", marker=marker)
                    break
            for url in _URL_RE.findall(s):
                if url not in self.urls and len(self.urls) < 200:
                    self.urls.append(url)
            for ip in _IPV4_RE.findall(s):
                self.add_host(ip)
            if _HOSTPORT_RE.match(s.strip()):
                self.add_host(s.strip())
            if re.search(r"(?:^|/)(?:ba|z|da|k)?sh(?:\s+-i)?$", s.strip()) and "/" in s:
                self.feature("shell_path", path=s.strip())
            if "/dev/tcp/" in s or "/dev/udp/" in s:
                self.feature("dev_tcp", path=s.strip())


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return value.decode("latin-1") if isinstance(value, bytes) else value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
            else:
                parts.append("{}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _const_str(node.left), _const_str(node.right)
        if left is not None and right is not None:
            return left + right
    return None


class _PyScanner(ast.NodeVisitor):
    def __init__(self, scan: LangScan, depth: int) -> None:
        self.scan = scan
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.strings: list[str] = []
        self.constants: dict[str, str] = {}

    # -- name resolution -------------------------------------------------------------------------
    def dotted(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else f"?.{node.attr}"
        if isinstance(node, ast.Call):
            func = self.dotted(node.func)
            if func in ("__import__", "importlib.import_module") and node.args:
                mod = _const_str(node.args[0])
                if mod:
                    return mod
            return None
        return None

    def value_str(self, node: ast.AST | None) -> str | None:
        s = _const_str(node)
        if s is not None:
            return s
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        if isinstance(node, ast.Call):
            func = self.dotted(node.func) or ""
            if func.endswith((".decode", ".encode")) and isinstance(node.func, ast.Attribute):
                return self.value_str(node.func.value)
            if func in ("base64.b64decode", "base64.decodebytes", "base64.urlsafe_b64decode") and node.args:
                raw = self.value_str(node.args[0])
                if raw is not None:
                    try:
                        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8", "replace")
                    except (binascii.Error, ValueError):
                        return None
                    self.scan.feature("base64_decode")
                    self.strings.append(decoded)
                    return decoded
            if func in ("bytes.fromhex", "binascii.unhexlify") and node.args:
                raw = self.value_str(node.args[0])
                if raw is not None:
                    try:
                        return bytes.fromhex(raw).decode("utf-8", "replace")
                    except ValueError:
                        return None
            if func == "?.join" and node.args and isinstance(node.args[0], ast.List | ast.Tuple):
                sep = self.value_str(node.func.value) if isinstance(node.func, ast.Attribute) else None
                items = [self.value_str(e) for e in node.args[0].elts]
                if sep is not None and all(i is not None for i in items):
                    return sep.join(items)  # type: ignore[arg-type]
        return None

    def argv_of(self, node: ast.AST) -> list[str] | None:
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value_str(e) for e in node.elts]
            if items and all(i is not None for i in items):
                return items  # type: ignore[return-value]
        return None

    # -- visitors --------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            self._note_module(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        self._note_module(mod)
        for alias in node.names:
            if alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{mod}.{alias.name}"

    def _note_module(self, mod: str) -> None:
        top = mod.split(".")[0]
        if top in ("socket", "pty", "subprocess", "paramiko", "socks", "ssl", "select", "threading", "ctypes"):
            self.scan.feature(f"import.{top}")

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.value_str(node.value)
        if value is not None:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.constants[target.id] = value
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(self.strings) < 2000:
            self.strings.append(node.value)
        elif isinstance(node.value, bytes) and len(self.strings) < 2000:  # b'{"method":"mining.submit"...}'
            self.strings.append(node.value.decode("latin-1"))

    def visit_Call(self, node: ast.Call) -> None:
        func = self.dotted(node.func) or ""
        scan = self.scan
        first = node.args[0] if node.args else None
        method = func.rsplit(".", 1)[-1]
        if func in ("socket.socket", "socket.create_connection", "socket.create_server", "socket.fromfd"):
            scan.feature("socket")
            if func == "socket.create_connection" and first is not None:
                self._address("connect", first)
            if func == "socket.create_server" and first is not None:
                self._address("bind", first)
        elif method in _SOCKET_METHODS and not func.startswith(("os.", "subprocess.", "sqlite3.", "requests.")):
            if method in ("connect", "connect_ex") and first is not None:
                self._address("connect", first)
            elif method == "bind" and first is not None:
                self._address("bind", first)
            elif method in ("listen", "accept"):
                scan.feature(f"socket.{method}")
            elif method in ("send", "sendall", "recv", "sendto"):
                scan.feature("socket.io")
        elif func in ("os.dup2", "os.dup"):
            scan.feature("os.dup2")
        elif func in _SHELL_STRING_FUNCS:
            scan.feature(func)
            if first is not None:
                self._shell_or_argv(first)
        elif func in _SUBPROCESS_FUNCS:
            scan.feature("subprocess")
            if first is not None:
                self._shell_or_argv(first)
        elif func.startswith("os.exec") or func.startswith("os.spawn") or func == "os.posix_spawn":
            scan.feature("os.exec")
            args = node.args[1:] if func.startswith("os.exec") else node.args[2:]
            if func.endswith(("v", "ve", "vp", "vpe")) and args:
                argv = self.argv_of(args[0])
                if argv:
                    scan.argvs.append(argv)
            else:
                argv = [a for a in (self.value_str(x) for x in args) if a is not None]
                if argv:
                    scan.argvs.append(argv)
        elif func in ("exec", "eval", "compile", "builtins.exec"):
            scan.feature("exec")
            code = self.value_str(first) if first is not None else None
            if code and self.depth < 8:
                inner = scan_python(code, depth=self.depth + 1)
                _merge(scan, inner)
        elif func in ("urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.urlopen") or func.startswith(
            "requests."
        ):
            scan.feature("http")
        elif func in ("threading.Thread", "select.select", "selectors.DefaultSelector", "multiprocessing.Process"):
            scan.feature("concurrency")
        elif func in ("ctypes.CDLL", "ctypes.cdll.LoadLibrary"):
            scan.feature("ctypes")
        elif func in ("os.fork", "os.forkpty", "os.setsid"):
            scan.feature(func)
        elif func in ("hashlib.sha256", "hashlib.scrypt") or func.startswith("hashlib."):
            scan.feature("hashing")
        self.generic_visit(node)

    def _address(self, kind: str, node: ast.AST) -> None:
        host = port = None
        if isinstance(node, ast.Tuple | ast.List) and len(node.elts) >= 2:
            host = self.value_str(node.elts[0])
            p = node.elts[1]
            if isinstance(p, ast.Constant) and isinstance(p.value, int):
                port = p.value
            elif isinstance(p, ast.Call) and p.args and isinstance(p.args[0], ast.Constant):
                try:
                    port = int(p.args[0].value)
                except (TypeError, ValueError):
                    port = None
        details: dict[str, Any] = {}
        if host is not None:
            details["host"] = host
        if port is not None:
            details["port"] = port
        self.scan.feature(f"socket.{kind}", **details)
        if host:
            self.scan.add_host(f"{host}:{port}" if port is not None else host)

    def _shell_or_argv(self, node: ast.AST) -> None:
        argv = self.argv_of(node)
        if argv:
            if len(argv) >= 3 and argv[1] in ("-c", "-lc", "-ic") and argv[0].rsplit("/", 1)[-1] in _SHELLS:
                self.scan.shell.append(argv[2])
            self.scan.argvs.append(argv)
            return
        text = self.value_str(node)
        if text is not None:
            self.scan.shell.append(text)


_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"}


def _merge(into: LangScan, other: LangScan) -> None:
    for f in other.features:
        if f not in into.features:
            into.features.append(f)
    for item in other.findings:
        if item not in into.findings:
            into.findings.append(item)
    into.shell.extend(other.shell)
    into.argvs.extend(other.argvs)
    for u in other.urls:
        if u not in into.urls:
            into.urls.append(u)
    for h in other.hosts:
        into.add_host(h)


def _derive_python(scan: LangScan) -> None:
    feats = set(scan.features)
    connect = "python:socket.connect" in feats
    listen = "python:socket.bind" in feats or "python:socket.listen" in feats or "python:socket.accept" in feats
    fd_shell = "python:os.dup2" in feats or "python:pty.spawn" in feats
    if connect and (fd_shell or ("python:subprocess" in feats and "python:socket.io" in feats)):
        scan.feature("reverse_shell")
    if listen and ("python:os.dup2" in feats or "python:pty.spawn" in feats or "python:subprocess" in feats):
        scan.feature("bind_shell")
    if (listen and connect) or (connect and "python:socket.io" in feats and "python:concurrency" in feats):
        scan.feature("socket_relay")
    if "python:stratum" in feats and ("python:socket" in feats or connect):
        scan.feature("stratum_client")


def scan_python(code: str, *, depth: int = 0) -> LangScan:
    """Scan Python source for sockets, process launches, stratum messages and embedded commands."""
    scan = LangScan("python")
    code = code.replace("\x00", "")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        scan.parse_error = f"python: {type(exc).__name__}: {exc}"[:200]
        _regex_scan(scan, code, _PY_PATTERNS)
        _derive_python(scan)
        return scan
    visitor = _PyScanner(scan, depth)
    try:
        visitor.visit(tree)
    except RecursionError:
        scan.parse_error = "python: nesting too deep"
    scan.scan_strings(visitor.strings)
    _derive_python(scan)
    return scan


# -- other interpreters: regular expressions over the source ---------------------------------------

_Q = r"""(?:"((?:[^"\\]|\\.){0,4000})"|'((?:[^'\\]|\\.){0,4000})')"""

_PY_PATTERNS: dict[str, str] = {
    "socket": r"socket\s*\.\s*socket|create_connection",
    "socket.connect": r"\.connect(?:_ex)?\s*\(",
    "socket.bind": r"\.bind\s*\(",
    "os.dup2": r"dup2\s*\(",
    "pty.spawn": r"pty\s*\.\s*spawn",
    "subprocess": r"subprocess|Popen",
    "os.system": r"os\s*\.\s*(?:system|popen)",
}
_PY_EXEC = rf"(?:system|popen|call|run|Popen|check_output|spawn)\s*\(\s*{_Q}"

_LANG_PATTERNS: dict[str, dict[str, str]] = {
    "perl": {
        "socket": r"IO::Socket|\bsocket\s*\(|use\s+Socket",
        "socket.connect": r"\bconnect\s*\(|PeerAddr|PeerHost",
        "socket.bind": r"\bbind\s*\(|LocalPort|Listen\s*=>",
        "fd_redirect": r"open\s*\(\s*STD(?:IN|OUT|ERR)\s*,\s*['\"][<>]&|->fdopen",
        "exec": r"\bexec\b|\bsystem\b|`|qx",
    },
    "ruby": {
        "socket": r"TCPSocket|TCPServer|UDPSocket|Socket\.new|require\s*['\"]socket",
        "socket.connect": r"TCPSocket\s*\.\s*(?:new|open)|\.connect\s*\(",
        "socket.bind": r"TCPServer|\.bind\s*\(",
        "fd_redirect": r"\.reopen|:in\s*=>|:out\s*=>|\bIO\.for_fd",
        "exec": r"\bexec\b|\bsystem\b|%x|`|IO\.popen|\bspawn\b|Open3",
    },
    "php": {
        "socket": r"fsockopen|stream_socket_client|stream_socket_server|socket_create",
        "socket.connect": r"fsockopen|stream_socket_client|socket_connect",
        "socket.bind": r"stream_socket_server|socket_bind",
        "fd_redirect": r"proc_open|descriptorspec",
        "exec": r"\bexec\s*\(|shell_exec|\bsystem\s*\(|passthru|popen|proc_open|`",
    },
    "node": {
        "socket": r"require\s*\(\s*['\"](?:net|dgram|tls)['\"]|net\.Socket|net\.connect|createConnection",
        "socket.connect": r"\.connect\s*\(|createConnection",
        "socket.bind": r"createServer|\.listen\s*\(",
        "fd_redirect": r"\.pipe\s*\(",
        "exec": r"child_process|\bspawn\s*\(|\bexec(?:Sync)?\s*\(",
    },
    "lua": {
        "socket": r"require\s*\(?\s*['\"]socket",
        "socket.connect": r"\.connect\s*\(|tcp\s*\(",
        "exec": r"os\.execute|io\.popen",
    },
    "awk": {
        "socket": r"/inet\d?/(?:tcp|udp)/",
        "socket.connect": r"/inet\d?/(?:tcp|udp)/0/[^/\s\"']+/\d+",
        "socket.bind": r"/inet\d?/(?:tcp|udp)/\d+/0/0",
        "exec": r"\bsystem\s*\(|\|\s*getline|\|&",
    },
}
_LANG_EXEC: dict[str, str] = {
    "perl": rf"(?:\bexec|\bsystem|qx)\s*\(?\s*{_Q}|`([^`]{{1,4000}})`",
    "ruby": rf"(?:\bexec|\bsystem|\bspawn|IO\.popen|%x)\s*\(?\s*{_Q}|`([^`]{{1,4000}})`",
    "php": rf"(?:\bexec|shell_exec|\bsystem|passthru|popen|proc_open)\s*\(\s*{_Q}|`([^`]{{1,4000}})`",
    "node": rf"(?:\bexec|execSync|\bspawn|spawnSync|execFile)\s*\(\s*{_Q}",
    "lua": rf"(?:os\.execute|io\.popen)\s*\(?\s*{_Q}",
    "awk": rf"\bsystem\s*\(\s*{_Q}",
}
_STRING_LIT = re.compile(_Q)


def _regex_scan(scan: LangScan, code: str, patterns: dict[str, str]) -> None:
    for feature, pattern in patterns.items():
        if re.search(pattern, code):
            scan.feature(feature)
    strings = [a or b for a, b in _STRING_LIT.findall(code)]
    scan.scan_strings(strings)
    for m in re.finditer(_PY_EXEC if scan.lang == "python" else _LANG_EXEC.get(scan.lang, r"$^"), code):
        text = next((g for g in m.groups() if g), None)
        if text:
            scan.shell.append(text.replace('\\"', '"').replace("\\'", "'"))


def scan_script(lang: str, code: str) -> LangScan:
    """Scan perl/ruby/php/node/lua/awk code (regular expressions), or Python (AST)."""
    if lang == "python":
        return scan_python(code)
    scan = LangScan(lang)
    code = code.replace("\x00", "")[:262144]
    _regex_scan(scan, code, _LANG_PATTERNS.get(lang, {}))
    feats = set(scan.features)
    p = f"{lang}:"
    if p + "socket.connect" in feats and (p + "fd_redirect" in feats or p + "exec" in feats):
        scan.feature("reverse_shell")
    if p + "socket.bind" in feats and p + "exec" in feats:
        scan.feature("bind_shell")
    if lang == "awk":
        for m in re.finditer(r"/inet\d?/(?:tcp|udp)/\d+/([^/\s\"']+)/(\d+)", code):
            scan.add_host(f"{m.group(1)}:{m.group(2)}")
    return scan
