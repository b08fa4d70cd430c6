"""Identify the protocol of an intercepted connection from the first bytes its client sends.

The gateway reads a little of every connection before it connects upstream, so policy can
use what the client claims (TLS SNI, HTTP Host) and detectors can see what it speaks
(stratum mining, SSH). ``identify`` is pure and is called again as more bytes arrive:
``final=False`` means more bytes could still change or complete the answer, so the caller
keeps reading within its byte and time budget and, if that runs out, uses the last answer.

Every parser here works on untrusted bytes: it checks bounds itself, never raises, and
looks at no more than ``MAX_INSPECT`` bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

MAX_INSPECT = 16 * 1024
"""Bytes of a connection's start that are ever looked at; past that the answer is final."""

MAX_FIELD = 256
"""Longest string kept in ``fields``: they end up in events, which should stay small."""


@dataclass(frozen=True)
class Identification:
    """What the first bytes of a connection look like; ``final`` says whether to stop reading."""

    protocol: str  # "stratum", "ssh", "tls", "http" or "unknown"
    final: bool
    fields: dict[str, Any] = field(default_factory=dict)


def identify(data: bytes) -> Identification:
    """Identify ``data``, the first bytes a client sent; never raises.

    "unknown" is final as soon as the bytes are no prefix of any known protocol (more bytes
    cannot help then); the empty input is not final because the client may not have spoken yet.
    """
    try:
        head = bytes(data[:MAX_INSPECT])
        result = _identify(head)
        if not result.final and len(data) >= MAX_INSPECT:
            return replace(result, final=True)  # nothing beyond the budget will be looked at
        return result
    except Exception:  # a safety net: a parser bug must not take the gateway down
        return Identification("unknown", True, {})


def _identify(data: bytes) -> Identification:
    if not data:
        return Identification("unknown", False, {})
    for detector in (_identify_tls, _identify_ssh, _identify_http, _identify_json):
        found = detector(data)
        if found is not None:
            return found
    return Identification("unknown", True, {"head": data[:16].hex()})


def _text(raw: bytes | str, limit: int = MAX_FIELD) -> str:
    """A printable, bounded string for ``fields``."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "backslashreplace")
    return raw[:limit]


# --- TLS ---------------------------------------------------------------------------------

_TLS_VERSIONS = {0x0300: "SSL3", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_MAX_RECORD = 16384 + 256  # plaintext records may not exceed 2^14; a little slack for odd stacks


class _Malformed(Exception):
    """Raised inside the TLS parser only; turned into "unknown"."""


class _Reader:
    """Bounds-checked big-endian reads over a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.uint(length_bytes)))


def _identify_tls(data: bytes) -> Identification | None:
    """A ClientHello, reassembled from as many handshake records as it spans."""
    if data[0] != 0x16:
        return None
    handshake = bytearray()
    pos = 0
    while True:
        header = data[pos : pos + 5]
        if len(header) >= 2 and header[1] != 3:
            return None
        if len(header) >= 3 and header[2] > 4:
            return None
        if len(header) < 5:
            return Identification("tls", False, {})
        length = int.from_bytes(header[3:5], "big")
        if header[0] != 0x16 or not 0 < length <= _MAX_RECORD:
            return None
        if len(data) < pos + 5 + length:
            return Identification("tls", False, {})
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) < 4:
            continue
        if handshake[0] != 1:  # not a ClientHello: no client starts with anything else
            return None
        hello_len = int.from_bytes(handshake[1:4], "big")
        if hello_len > MAX_INSPECT:
            return None
        if len(handshake) >= 4 + hello_len:
            try:
                return Identification("tls", True, _parse_client_hello(bytes(handshake[4 : 4 + hello_len])))
            except _Malformed:
                return None
        if pos >= len(data):
            return Identification("tls", False, {})


def _is_grease(value: int) -> bool:
    """RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...) are noise, never a real version."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def _parse_client_hello(body: bytes) -> dict[str, Any]:
    r = _Reader(body)
    legacy_version = r.uint(2)
    r.take(32)  # random
    if len(r.vector(1).data) > 32:  # session id
        raise _Malformed
    suites = r.vector(2)
    if suites.remaining() % 2:
        raise _Malformed
    r.vector(1)  # compression methods
    fields: dict[str, Any] = {"sni": None, "alpn": [], "tls_version": _TLS_VERSIONS.get(legacy_version, "unknown")}
    if r.remaining() == 0:  # extensions are optional before TLS 1.3
        return fields
    extensions = r.vector(2)
    while extensions.remaining():
        ext_type = extensions.uint(2)
        ext = extensions.vector(2)
        if ext_type == _EXT_SERVER_NAME and ext.remaining():
            names = ext.vector(2)
            while names.remaining():
                name_type = names.uint(1)
                name = names.vector(2).data
                if name_type == 0 and fields["sni"] is None:
                    fields["sni"] = _text(name).rstrip(".").lower()
        elif ext_type == _EXT_ALPN:
            protocols = ext.vector(2)
            while protocols.remaining():
                fields["alpn"].append(_text(protocols.vector(1).data))
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            versions = ext.vector(1)
            offered = []
            while versions.remaining() >= 2:
                value = versions.uint(2)
                if not _is_grease(value) and value in _TLS_VERSIONS:
                    offered.append(value)
            if offered:
                fields["tls_version"] = _TLS_VERSIONS[max(offered)]
    return fields


# --- SSH ---------------------------------------------------------------------------------

_SSH_PREFIXES = (b"SSH-2.0-", b"SSH-1.99-")
_SSH_MAX_BANNER = 255  # RFC 4253 4.2: the identification line is at most 255 bytes


def _identify_ssh(data: bytes) -> Identification | None:
    prefix = next((p for p in _SSH_PREFIXES if data.startswith(p)), None)
    if prefix is None:
        if any(len(data) < len(p) and p.startswith(data) for p in _SSH_PREFIXES):
            return Identification("ssh", False, {})
        return None
    end = data.find(b"\n")
    if end < 0 and len(data) <= _SSH_MAX_BANNER:
        return Identification("ssh", False, {"proto_version": prefix[4:-1].decode()})
    line = data[: end if end >= 0 else _SSH_MAX_BANNER].rstrip(b"\r")[:_SSH_MAX_BANNER]
    software, _, comment = line[len(prefix) :].partition(b" ")
    fields = {"banner": _text(line), "proto_version": prefix[4:-1].decode(), "software": _text(software)}
    if comment:
        fields["comment"] = _text(comment)
    return Identification("ssh", True, fields)


# --- HTTP --------------------------------------------------------------------------------

_HTTP_METHODS = (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT")
_HTTP_VERSION = re.compile(rb"HTTP/1\.[0-9]")
_HTTP_VERSION_PREFIX = re.compile(rb"(H(T(T(P(/(1(\.[0-9]?)?)?)?)?)?)?)?")
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_TARGET_BYTES = re.compile(rb"[\x21-\x7e\x80-\xff]*")


def _identify_http(data: bytes) -> Identification | None:
    if _H2_PREFACE.startswith(data[: len(_H2_PREFACE)]):  # HTTP/2 with prior knowledge (h2c)
        if len(data) < len(_H2_PREFACE):
            return Identification("http", False, {})
        return Identification("http", True, {"method": "PRI", "version": "2"})
    end = data.find(b"\n")
    line = (data if end < 0 else data[:end]).rstrip(b"\r")
    method, space, rest = line.partition(b" ")
    if not space:
        if end < 0 and any(m.startswith(method) for m in _HTTP_METHODS):
            return Identification("http", False, {})
        return None
    if method not in _HTTP_METHODS:
        return None
    target, space, version = rest.partition(b" ")
    if not _TARGET_BYTES.fullmatch(target) or (space and not target):
        return None
    if end < 0:  # request line still arriving: is it still a prefix of "METHOD target HTTP/1.x"?
        if space and not _HTTP_VERSION_PREFIX.fullmatch(version):
            return None
        return Identification("http", False, {"method": method.decode()})
    if not target or not _HTTP_VERSION.fullmatch(version):
        return None
    return _http_after_request_line(data, end + 1, method.decode(), target, version)


def _http_after_request_line(data: bytes, pos: int, method: str, target: bytes, version: bytes) -> Identification:
    headers: dict[str, str] = {}
    complete = False
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end].rstrip(b"\r")
        pos = end + 1
        if not line:
            complete = True
            break
        name, colon, value = line.partition(b":")
        if colon:
            headers.setdefault(name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
    fields: dict[str, Any] = {"method": method, "path": _text(target), "version": version[5:].decode()}
    host = _host_without_port(headers.get("host", ""))
    if method == "CONNECT":  # the tunnel goes where the target says, whatever Host says
        host = _host_without_port(target.decode("latin-1"))
        port = target.rpartition(b":")[2]
        if port.isdigit() and int(port) <= 65535:
            fields["port"] = int(port)
    elif not host and target[:1] != b"/":  # absolute-form target, as sent to a proxy
        try:
            host = _host_without_port(urlsplit(target.decode("latin-1")).netloc.rpartition("@")[2])
        except ValueError:
            host = ""
    if host:
        fields["host"] = _text(host)
    if "user-agent" in headers:
        fields["user_agent"] = _text(headers["user-agent"])
    if not complete:
        return Identification("http", False, fields)
    return _http_body(data[pos:], pos, headers, fields)


def _http_body(body: bytes, body_start: int, headers: dict[str, str], fields: dict[str, Any]) -> Identification:
    """Wait for a small JSON body to see whether it is mining JSON-RPC (getwork over HTTP)."""
    length_text = headers.get("content-length", "")
    if not (length_text.isascii() and length_text.isdigit()) or not 0 < int(length_text) <= MAX_INSPECT - body_start:
        return Identification("http", True, fields)
    length = int(length_text)
    stripped = body.lstrip()
    if stripped and stripped[:1] not in b"{[":
        return Identification("http", True, fields)
    if len(body) < length:
        return Identification("http", False, fields)
    message = _loads(body[:length])
    for msg in message if isinstance(message, list) else [message]:
        method = _mining_method(msg)
        if method:
            fields["mining_method"] = _text(method)
            break
    return Identification("http", True, fields)


def _host_without_port(host: str) -> str:
    """``example.com:8080`` -> ``example.com``, ``[::1]:8080`` -> ``::1``; lower-case, no trailing dot."""
    host = host.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".").lower()


# --- stratum / mining JSON-RPC -----------------------------------------------------------

_MINING_METHODS = frozenset(
    {
        "submit",
        "keepalived",
        "getjob",
        "eth_submitlogin",
        "eth_getwork",
        "eth_submitwork",
        "eth_submithashrate",
        "getwork",
        "getblocktemplate",
        "submitblock",
    }
)
_MINING_HINT = re.compile(
    rb'"method"\s*:\s*"(mining\.[\w.]+|login|submit|keepalived|getjob|eth_submitLogin|eth_getWork|eth_submitWork'
    rb'|eth_submitHashrate|getwork|getblocktemplate|submitblock)"',
    re.IGNORECASE,
)
_WHITESPACE = b" \t\r\n"


def _loads(raw: bytes) -> Any:
    """``json.loads`` that returns None for anything it cannot parse (deep nesting included)."""
    try:
        return json.loads(raw)
    except Exception:
        return None


def _mining_method(msg: Any) -> str | None:
    """The method of a mining JSON-RPC request, or None when ``msg`` is not one."""
    if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
        return None
    method: str = msg["method"]
    lowered = method.lower()
    if lowered.startswith("mining.") or lowered in _MINING_METHODS:
        return method
    params = msg.get("params")
    if lowered == "login" and isinstance(params, dict) and ("login" in params or "agent" in params):
        return method  # XMRig-style: a bare "login" is too common to count on its own
    return None


def _mining_fields(msg: dict[str, Any], fields: dict[str, Any]) -> None:
    """Fill ``user`` and ``agent`` from one mining request, keeping what is already known."""
    method = str(msg.get("method", "")).lower()
    params = msg.get("params")
    user = agent = None
    if isinstance(params, dict):
        user = params.get("login") or params.get("user") or params.get("worker")
        agent = params.get("agent")
    elif isinstance(params, list) and params:
        if method in ("mining.authorize", "eth_submitlogin", "login"):
            user = params[0]
        elif method == "mining.subscribe":
            agent = params[0]
    user = user or msg.get("worker")
    if user is not None and "user" not in fields:
        fields["user"] = _text(str(user))
    if isinstance(agent, str) and agent and "agent" not in fields:
        fields["agent"] = _text(agent)


def _identify_json(data: bytes) -> Identification | None:
    """Newline-delimited JSON-RPC, as stratum and its XMRig and Ethereum variants speak it.

    A complete message that is not mining makes the answer final: a JSON-RPC client waits for
    its reply, so holding out for a second message would stall every legitimate one.
    """
    start = data.lstrip(_WHITESPACE)
    if start and start[:1] not in b"{[":
        return None
    *lines, tail = data.split(b"\n")
    if tail.strip() and _loads(tail) is not None:
        lines, tail = [*lines, tail], b""  # a whole message that only lacks its newline
    fields: dict[str, Any] = {}
    seen_methods: list[str] = []
    for line in lines:
        if not line.strip(_WHITESPACE):
            continue
        message = _loads(line)
        if message is None:
            return None
        for msg in message if isinstance(message, list) else [message]:
            method = _mining_method(msg)
            if method:
                fields.setdefault("method", _text(method))
                _mining_fields(msg, fields)
            elif isinstance(msg, dict) and isinstance(msg.get("method"), str):
                seen_methods.append(msg["method"])
    if fields:
        return Identification("stratum", True, fields)
    tail = tail.lstrip(_WHITESPACE)
    if tail:
        if tail[:1] not in b"{[":
            return None
        hint = _MINING_HINT.search(tail)
        if hint:
            return Identification("stratum", False, {"method": _text(hint.group(1))})
        return Identification("unknown", False, {})
    if not any(line.strip(_WHITESPACE) for line in lines):
        return Identification("unknown", False, {})  # only whitespace so far
    return Identification("unknown", True, {"jsonrpc_method": _text(seen_methods[0])} if seen_methods else {})
