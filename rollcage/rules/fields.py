"""The fields a rule condition can name, and how each is read from an event.

An event is evaluated through *views*: a ``command`` event gives one view per element of its
``commands`` list (``cmd.*`` fields describe that simple command, ``cmd.line`` the whole text);
every other event gives a single view. A getter takes ``(event, view)`` and returns the value or
``None`` when the event does not carry it; a missing value makes every comparison false.

Each field also names the event types that can carry it, which lets the engine index rules by
``evt.type`` so that a flow event never runs the command rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[dict[str, Any], dict[str, Any]], Any]

ALL_TYPES = None  # a field present on every event type

STR, NUM, LIST, BOOL = "str", "num", "list", "bool"

EVENT_TYPES = (
    "command",
    "exec",
    "flow",
    "dns",
    "net_drop",
    "resource",
    "gpu",
    "file",
    "alert",
    "sandbox",
    "command_started",
    "command_finished",
)


@dataclass(frozen=True)
class Field:
    """One condition field: its name, value kind, event types and getter."""

    name: str
    kind: str
    types: frozenset[str] | None
    getter: Getter
    doc: str
    per_event: bool = False  # same value for every view of one event (memoisable)


def _key(key: str) -> Getter:
    get = lambda ev, v: ev.get(key)  # noqa: E731
    get.access = ("ev", key)  # type: ignore[attr-defined]  # lets the compiler inline the lookup
    return get


def _view(key: str) -> Getter:
    get = lambda ev, v: v.get(key)  # noqa: E731
    get.access = ("v", key)  # type: ignore[attr-defined]
    return get


def _list_key(key: str) -> Getter:
    def get(ev: dict[str, Any], v: dict[str, Any]) -> Any:
        value = ev.get(key)
        if value is None or isinstance(value, list):
            return value
        if isinstance(value, tuple):
            return list(value)
        return [value]

    return get


def _finding_kinds(ev: dict[str, Any], v: dict[str, Any]) -> Any:
    findings = ev.get("findings")
    if not isinstance(findings, list):
        return None
    return [f.get("kind") if isinstance(f, dict) else str(f) for f in findings]


def _proc_args(ev: dict[str, Any], v: dict[str, Any]) -> Any:
    argv = ev.get("argv")
    if not isinstance(argv, list):
        return None
    return " ".join(str(a) for a in argv[1:])


def _proc_name(ev: dict[str, Any], v: dict[str, Any]) -> Any:
    name = ev.get("name")
    if name:
        return name
    exe = ev.get("exe")
    return exe.rsplit("/", 1)[-1] if isinstance(exe, str) and exe else None


def _gpu_over_budget(ev: dict[str, Any], v: dict[str, Any]) -> Any:
    used, budget = ev.get("memory_bytes"), ev.get("budget_bytes")
    if not isinstance(used, int | float) or not isinstance(budget, int | float):
        return None
    return used > budget


def _only(*types: str) -> frozenset[str]:
    return frozenset(types)


_CMD = _only("command")
_EXEC = _only("exec")
_FLOW = _only("flow")
_DNS = _only("dns")
_RES = _only("resource")
_GPU = _only("gpu")

_TABLE: list[Field] = [
    Field("evt.type", STR, ALL_TYPES, _key("type"), "event type (command, exec, flow, dns, ...)"),
    Field("evt.time", STR, ALL_TYPES, _key("time"), "event time, RFC 3339"),
    Field("evt.step", NUM, ALL_TYPES, _key("step"), "agent step the event is attributed to"),
    Field("evt.sandbox_id", STR, ALL_TYPES, _key("sandbox_id"), "sandbox id"),
    Field("evt.run_id", STR, ALL_TYPES, _key("run_id"), "run id"),
    Field("evt.episode_id", STR, ALL_TYPES, _key("episode_id"), "episode id"),
    # static analysis: one view per simple command
    Field("cmd.name", STR, _CMD, _view("name"), "basename of the simple command's program"),
    Field("cmd.path", STR, _CMD, _view("path"), "the program as written (may include a directory)"),
    Field("cmd.argv", LIST, _CMD, _view("argv"), "argv of the simple command (list)"),
    Field("cmd.args", STR, _CMD, _view("args"), "argv[1:] joined by spaces"),
    Field("cmd.text", STR, _CMD, _view("text"), "argv and redirects of the simple command joined by spaces"),
    Field("cmd.redirects", LIST, _CMD, _view("redirects"), "redirects of the simple command, e.g. '>&/dev/tcp/h/1'"),
    Field("cmd.source", STR, _CMD, _view("source"), "how the command was found: direct, bash -c, base64, ..."),
    Field("cmd.line", STR, _CMD, _key("command"), "the whole command text", per_event=True),
    Field("cmd.urls", LIST, _CMD, _list_key("urls"), "URLs found in the command", per_event=True),
    Field("cmd.paths", LIST, _CMD, _list_key("paths"), "paths found in the command", per_event=True),
    Field("cmd.parse_error", STR, _CMD, _key("parse_error"), "parser error, if any", per_event=True),
    Field("cmd.features", LIST, _CMD, _list_key("features"), "analyzer features (dev_tcp, python:socket, ...)", True),
    Field("cmd.finding_kinds", LIST, _CMD, _finding_kinds, "kinds of the analyzer's findings", per_event=True),
    Field("cmd.hosts", LIST, _CMD, _list_key("hosts"), "hosts and host:port pairs in the command", per_event=True),
    # exec sensor
    Field("proc.name", STR, _EXEC, _proc_name, "process name (basename of exe or comm)"),
    Field("proc.exe", STR, _EXEC, _key("exe"), "executable path"),
    Field("proc.sha256", STR, _EXEC, _key("exe_sha256"), "sha256 of the executable"),
    Field("proc.argv", LIST, _EXEC, _list_key("argv"), "argv (list)"),
    Field("proc.args", STR, _EXEC, _proc_args, "argv[1:] joined by spaces"),
    Field("proc.cmdline", STR, _EXEC, _key("cmdline"), "full command line"),
    Field("proc.cwd", STR, _EXEC, _key("cwd"), "working directory"),
    Field("proc.pid", NUM, _EXEC, _key("pid"), "process id"),
    Field("proc.ppid", NUM, _EXEC, _key("ppid"), "parent process id"),
    Field("proc.uid", NUM, _EXEC, _key("uid"), "user id"),
    Field("proc.pname", STR, _EXEC, _key("pname"), "parent process name"),
    Field("proc.pcmdline", STR, _EXEC, _key("pcmdline"), "parent command line"),
    # gateway
    Field("flow.dst_ip", STR, _FLOW, _key("dst_ip"), "original destination IP"),
    Field("flow.dst_port", NUM, _FLOW, _key("dst_port"), "original destination port"),
    Field("flow.domain", STR, _FLOW, _key("domain"), "domain (SNI, Host or DNS answer)"),
    Field("flow.protocol", STR, _FLOW, _key("protocol"), "stratum/ssh/tls/http/unknown"),
    Field("flow.phase", STR, _FLOW, _key("phase"), "open/denied/closed"),
    Field("flow.decision", STR, _FLOW, _key("decision"), "allow/deny"),
    Field("flow.reason", STR, _FLOW, _key("reason"), "why the policy decided so"),
    Field("flow.bytes_out", NUM, _FLOW, _key("bytes_out"), "bytes sent"),
    Field("flow.bytes_in", NUM, _FLOW, _key("bytes_in"), "bytes received"),
    Field("flow.pid", NUM, _FLOW, _key("pid"), "owning process id"),
    Field("flow.cmdline", STR, _FLOW, _key("cmdline"), "owning process command line"),
    Field("flow.indicators", LIST, _FLOW, _list_key("indicators"), "indicators (stratum, scan, metadata, ...)"),
    Field("flow.tags", LIST, _FLOW, _list_key("tags"), "tags"),
    Field("dns.qname", STR, _DNS, _key("qname"), "query name"),
    Field("dns.qtype", STR, _DNS, _key("qtype"), "query type"),
    Field("dns.answer", LIST, _DNS, _list_key("answer"), "answer IPs"),
    Field("dns.decision", STR, _DNS, _key("decision"), "allow/deny"),
    Field("dns.indicators", LIST, _DNS, _list_key("indicators"), "mining_domain, dns_tunnel, dns_rate"),
    Field("dns.pid", NUM, _DNS, _key("pid"), "querying process id"),
    Field("net_drop.protocol", STR, _only("net_drop"), _key("protocol"), "udp/icmp/other"),
    Field("net_drop.count", NUM, _only("net_drop"), _key("count"), "new drops since the last event"),
    # resources
    Field("res.cpu_pct", NUM, _RES, _key("cpu_pct"), "CPU, percent of one core"),
    Field("res.memory_bytes", NUM, _RES, _key("memory_bytes"), "memory in bytes"),
    Field("res.pids", NUM, _RES, _key("pids"), "number of processes"),
    Field("gpu.index", NUM, _GPU, _key("gpu_index"), "GPU index"),
    Field("gpu.util", NUM, _GPU, _key("util"), "GPU utilisation, percent"),
    Field("gpu.memory_bytes", NUM, _GPU, _key("memory_bytes"), "GPU memory used by the process"),
    Field("gpu.budget_bytes", NUM, _GPU, _key("budget_bytes"), "GPU memory budget of the sandbox"),
    Field("gpu.over_budget", BOOL, _GPU, _gpu_over_budget, "memory_bytes > budget_bytes"),
    Field("gpu.pid", NUM, _GPU, _key("pid"), "process using the GPU"),
    Field("gpu.cmdline", STR, _GPU, _key("cmdline"), "command line of the process using the GPU"),
    Field("gpu.expected", BOOL, _GPU, _key("expected"), "whether the task started this process for GPU work"),
    Field("gpu.source", STR, _GPU, _key("source"), "nvml/simulated"),
    # file scan
    Field("file.path", STR, _only("file"), _key("path"), "path of the scanned file"),
    Field("file.findings", LIST, _only("file"), _list_key("findings"), "findings of the scan"),
    Field("file.kinds", LIST, _only("file"), _finding_kinds, "kinds of the findings (mining_config, cron_entry, ...)"),
    Field("file.hosts", LIST, _only("file"), _list_key("hosts"), "hosts named in the file"),
    Field("file.used_by", STR, _only("file"), _key("used_by"), "the command that hands the file to a program"),
]

FIELDS: dict[str, Field] = {f.name: f for f in _TABLE}

_INDEXED = re.compile(r"^(?P<base>[a-z_]+\.[a-z0-9_]+)\[(?P<index>-?\d+)\]$")


def lookup(name: str) -> Field | None:
    """The field called ``name``; list fields accept an index, e.g. ``cmd.argv[1]``."""
    field = FIELDS.get(name)
    if field is not None:
        return field
    m = _INDEXED.match(name)
    if not m:
        return None
    base = FIELDS.get(m.group("base"))
    if base is None or base.kind != LIST:
        return None
    index = int(m.group("index"))
    inner = base.getter

    def get(ev: dict[str, Any], v: dict[str, Any]) -> Any:
        items = inner(ev, v)
        if not items:
            return None
        try:
            return items[index]
        except IndexError:
            return None

    return Field(name, STR, base.types, get, f"element {index} of {base.name}", base.per_event)


def _redirect_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        fd = item.get("fd")
        op = item.get("op") or item.get("operator") or ""
        target = item.get("target") or item.get("file") or item.get("word") or ""
        return f"{'' if fd is None else fd}{op}{target}"
    return str(item)


def command_view(item: Any) -> dict[str, Any]:
    """The per-simple-command view of one element of a ``command`` event's ``commands``."""
    if not isinstance(item, dict):
        return {}
    argv = item.get("argv")
    argv = [str(a) for a in argv] if isinstance(argv, list | tuple) else []
    path = item.get("name") or (argv[0] if argv else "")
    path = str(path)
    redirects = item.get("redirects")
    redirects = [_redirect_text(r) for r in redirects] if isinstance(redirects, list | tuple) else []
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "argv": argv,
        "args": " ".join(argv[1:]),
        "text": " ".join(argv + redirects),
        "redirects": redirects,
        "source": item.get("source"),
    }
