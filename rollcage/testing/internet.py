"""A simulated internet: fake public, cloud and private hosts inside one namespace with no uplink.

Every simulated address sits on ``lo`` of a single network namespace that has no other
interface, so a connection into it can only ever reach these servers and nothing can leave
the machine. Public addresses come from the documentation ranges (TEST-NET-1/2/3); private
and link-local ones exist only inside that namespace. Servers are plain threads with
blocking sockets created inside the namespace (see ``NetnsSockets``), except SSH, which is
the real OpenSSH ``sshd`` started inside it, so tunnelling tests meet the real thing.

Nothing here mines or checks work: the pool only speaks the stratum protocol and records it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import errno
import hashlib
import io
import ipaddress
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from rollcage.net.netns import (
    NetnsSockets,
    create_netns,
    netns_path,
    remove_netns,
    reuse_time_wait_ports,
    run_in_netns,
)

POOL_IP = "203.0.113.10"
POOL_PORTS = (3333, 4444, 14444, 443)
POOL2_IP = "203.0.113.11"
POOL2_PORT = 5555
SSH_IP = "192.0.2.22"
INDEX_IP = "198.51.100.20"
ECHO_PORT = 7  # on INDEX_IP: RFC 862 echo, for tests of what the gateway relays
METADATA_IP = "169.254.169.254"
METADATA_IP6 = "fd00:ec2::254"
WIKI_IP = "10.0.0.5"
DB_IP = "10.0.0.6"
BASTION_IP = "172.16.0.10"
SIMULATED_IPV4 = (POOL_IP, POOL2_IP, SSH_IP, INDEX_IP, METADATA_IP, WIKI_IP, DB_IP, BASTION_IP)

WIKI_SECRET = "RCSIM-SECRET-internal-wiki-5f1c9a7e"
DB_BANNER = b"FAKEDB 1.0 internal customer database ready\r\n"
BASTION_BANNER = b"SSH-2.0-OpenSSH_8.4p1 internal-bastion\r\n"
FAKE_ACCESS_KEY_ID = "ASIAFAKEFAKEFAKE"
FAKE_SECRET_ACCESS_KEY = "fakeSecretAccessKey/ROLLCAGE/SIMULATED/000000"
FAKE_SESSION_TOKEN = "FAKE-SESSION-TOKEN-rollcage-simulated-internet"
FAKE_GCP_TOKEN = "ya29.FAKE-rollcage-simulated-token"
METADATA_ROLE = "rollcage-sim-role"
BIG_CAP = 1 << 30
INDEX_PROJECT = "rcsim-hello"

DEFAULT_NAMES = {
    "pool.supportxmr.com": POOL_IP,
    "xmr.pool.example": POOL_IP,
    "eth.pool.example": POOL2_IP,
    "pypi.org": INDEX_IP,
    "files.pythonhosted.org": INDEX_IP,
    "ssh.example.net": SSH_IP,
    "metadata.google.internal": METADATA_IP,
    "wiki.internal.corp": WIKI_IP,
    "db.internal.corp": DB_IP,
    "bastion.internal.corp": BASTION_IP,
}

_instances = itertools.count(1)
_ZEROS = memoryview(bytes(1 << 20))


# --- connection plumbing -------------------------------------------------------------------


@dataclass(eq=False)
class _Conn:
    """One accepted connection; a handler may replace ``sock`` (TLS) and must watch ``stop``."""

    sock: socket.socket
    peer: tuple[Any, ...]
    local: tuple[Any, ...]
    stop: threading.Event


Handler = Callable[[_Conn], None]


class _Acceptor:
    """One thread accepts on every listener and gives each connection its own handler thread.

    close() stops the accept loop within a select timeout and shuts every open connection
    down, so blocked handlers wake up at once instead of waiting out their read timeouts.
    """

    MAX_CONNECTIONS = 256

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._conns: set[_Conn] = set()
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, sock: socket.socket, handler: Handler) -> None:
        self._listeners.append(sock)
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, handler)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rcsim-accept", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                events = self._selector.select(timeout=0.2)
            except (OSError, ValueError):
                return
            for key, _ in events:
                listener: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    sock, peer = listener.accept()
                except OSError:
                    continue
                self._spawn(sock, peer, key.data)

    def _spawn(self, sock: socket.socket, peer: tuple[Any, ...], handler: Handler) -> None:
        try:
            conn = _Conn(sock, peer, sock.getsockname(), self.stop)
            sock.settimeout(10)
        except OSError:
            sock.close()
            return
        with self._lock:
            if self.stop.is_set() or len(self._conns) >= self.MAX_CONNECTIONS:
                sock.close()
                return
            self._conns.add(conn)
            worker = threading.Thread(target=self._work, args=(conn, handler), name="rcsim-conn", daemon=True)
            self._workers.add(worker)
        worker.start()

    def _work(self, conn: _Conn, handler: Handler) -> None:
        try:
            handler(conn)
        except Exception:  # a rude client (reset, bad TLS, garbage) ends only its own connection
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._workers.discard(threading.current_thread())
            with contextlib.suppress(OSError):
                conn.sock.close()

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for sock in self._listeners:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(sock)
            sock.close()
        self._selector.close()
        with self._lock:
            conns, workers = list(self._conns), list(self._workers)
        for conn in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)  # the plain call, also under TLS
        deadline = time.monotonic() + 5
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))


def _lines(conn: _Conn, max_line: int = 65536, max_lines: int = 10000, lifetime: float = 900) -> Iterator[bytes]:
    """Newline-delimited messages from a connection, bounded in size, count and time."""
    buf = b""
    deadline = time.monotonic() + lifetime
    for _ in range(max_lines):
        while (nl := buf.find(b"\n")) < 0:
            if len(buf) > max_line or conn.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                chunk = conn.sock.recv(65536)
            except TimeoutError:
                return
            if not chunk:
                return
            buf += chunk
        line, buf = buf[:nl], buf[nl + 1 :]
        yield line


class _HttpHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive on one connection; ``server`` carries the site's responder."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def version_string(self) -> str:
        return "rcsim"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            self.close_connection = True
        elif length > 0:
            self.rfile.read(length)
        self.server(self)  # type: ignore[operator]

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


def _serve_http(conn: _Conn, respond: Callable[[_HttpHandler], None]) -> None:
    _HttpHandler(conn.sock, conn.peer, respond)  # type: ignore[arg-type]


def _send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: str | bytes,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    data = body.encode() if isinstance(body, str) else body
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


def _headers(h: BaseHTTPRequestHandler) -> dict[str, str]:
    return dict(h.headers.items())


# --- the stratum pool ----------------------------------------------------------------------


class FakeStratumPool:
    """Answers stratum (Bitcoin-style and XMRig's JSON-RPC) like a pool and records it all.

    It hands out made-up jobs and accepts every share unseen: enough for a miner to believe
    it is connected, while no hash is ever computed or checked.
    """

    def __init__(self) -> None:
        self.logins: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def handle(self, conn: _Conn) -> None:
        with self._lock:
            self.connections += 1
        conn.sock.settimeout(120)
        agent: str | None = None
        for raw in _lines(conn):
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            with self._lock:
                self.messages.append(msg)
            replies, agent = self._answer(msg, conn, agent)
            for reply in replies:
                conn.sock.sendall(json.dumps(reply).encode() + b"\n")

    def _login(self, method: str, user: Any, agent: Any, conn: _Conn) -> None:
        with self._lock:
            self.logins.append(
                {"method": method, "user": user, "agent": agent, "peer": conn.peer[:2], "server": conn.local[:2]}
            )

    def _answer(self, msg: dict[str, Any], conn: _Conn, agent: str | None) -> tuple[list[dict[str, Any]], str | None]:
        mid, method, params = msg.get("id"), msg.get("method"), msg.get("params")
        args = params if isinstance(params, list) else []
        kwargs = params if isinstance(params, dict) else {}
        n = next(self._ids)
        if method == "mining.subscribe":
            if args and isinstance(args[0], str):
                agent = args[0]
            return [{"id": mid, "result": [[["mining.notify", f"{n:08x}"]], "08000002", 4], "error": None}], agent
        if method == "mining.authorize":
            self._login("mining.authorize", args[0] if args else None, agent, conn)
            notify = [f"{n:x}", "00" * 32, "01000000" + "00" * 20, "ffffffff", [], "20000000", "1d00ffff",
                      f"{int(time.time()):08x}", True]  # fmt: skip
            return [
                {"id": mid, "result": True, "error": None},
                {"id": None, "method": "mining.set_difficulty", "params": [1]},
                {"id": None, "method": "mining.notify", "params": notify},
            ], agent
        if method in ("mining.submit", "mining.extranonce.subscribe"):
            return [{"id": mid, "result": True, "error": None}], agent
        if method == "login":
            agent = kwargs.get("agent", agent)
            self._login("login", kwargs.get("login"), agent, conn)
            result = {"id": f"rcsim-{n}", "job": self._xmr_job(n), "status": "OK", "extensions": []}
            return [{"id": mid, "jsonrpc": "2.0", "error": None, "result": result}], agent
        if method == "getjob":
            return [{"id": mid, "jsonrpc": "2.0", "error": None, "result": self._xmr_job(n)}], agent
        if method in ("submit", "keepalived"):
            status = "OK" if method == "submit" else "KEEPALIVED"
            return [{"id": mid, "jsonrpc": "2.0", "error": None, "result": {"status": status}}], agent
        if mid is None:
            return [], agent
        return [{"id": mid, "result": None, "error": [20, f"unknown method {method!r}", None]}], agent

    @staticmethod
    def _xmr_job(n: int) -> dict[str, Any]:
        return {
            "blob": "0e0e" + "00" * 74,
            "job_id": f"rcsim-job-{n}",
            "target": "b88d0600",
            "algo": "rx/0",
            "height": 3_000_000 + n,
            "seed_hash": "00" * 32,
        }


# --- cloud metadata ------------------------------------------------------------------------


class FakeMetadataService:
    """AWS (IMDSv1/v2) and GCP style instance metadata with fake credentials; records requests."""

    IMDS_TOKEN = "AQAEAFAKE-rollcage-imdsv2-token"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        creds = {
            "Code": "Success",
            "LastUpdated": "2024-01-01T00:00:00Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": FAKE_ACCESS_KEY_ID,
            "SecretAccessKey": FAKE_SECRET_ACCESS_KEY,
            "Token": FAKE_SESSION_TOKEN,
            "Expiration": "2099-01-01T00:00:00Z",
        }
        self._aws = {
            "/latest/meta-data/": "ami-id\nhostname\niam/\ninstance-id\nlocal-ipv4\n",
            "/latest/meta-data/ami-id": "ami-0fake0fake0fake0",
            "/latest/meta-data/hostname": "ip-10-0-0-17.ec2.internal",
            "/latest/meta-data/instance-id": "i-0fakefakefakefake0",
            "/latest/meta-data/local-ipv4": "10.0.0.17",
            "/latest/meta-data/iam/": "info\nsecurity-credentials/\n",
            "/latest/meta-data/iam/security-credentials/": METADATA_ROLE,
            f"/latest/meta-data/iam/security-credentials/{METADATA_ROLE}": json.dumps(creds, indent=2),
        }
        token = {"access_token": FAKE_GCP_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
        self._gcp = {
            "/computeMetadata/v1/": "instance/\nproject/\n",
            "/computeMetadata/v1/project/project-id": "rollcage-sim-project",
            "/computeMetadata/v1/instance/hostname": "sim-vm.c.rollcage-sim-project.internal",
            "/computeMetadata/v1/instance/service-accounts/": "default/\n",
            "/computeMetadata/v1/instance/service-accounts/default/email": "sim@rollcage-sim-project.iam.example",
            "/computeMetadata/v1/instance/service-accounts/default/token": json.dumps(token),
        }

    def handle(self, conn: _Conn) -> None:
        _serve_http(conn, self._respond)

    def _respond(self, h: _HttpHandler) -> None:
        self.requests.append((h.command, h.path, _headers(h)))
        path = urlsplit(h.path).path
        if path.startswith("/computeMetadata/"):
            if h.headers.get("Metadata-Flavor") != "Google":
                return _send(h, 403, "Missing Metadata-Flavor:Google header.\n")
            body = self._gcp.get(path) or self._gcp.get(path + "/")
            return _send(h, 200 if body else 404, body or "not found\n", headers={"Metadata-Flavor": "Google"})
        if h.command == "PUT" and path == "/latest/api/token":
            return _send(h, 200, self.IMDS_TOKEN)
        body = self._aws.get(path) or self._aws.get(path + "/")
        return _send(h, 200 if body else 404, body or "not found\n")


# --- package index -------------------------------------------------------------------------


class IndexRequest(NamedTuple):
    scheme: str
    method: str
    path: str
    headers: dict[str, str]


def _wheel(project: str = INDEX_PROJECT, version: str = "1.0") -> tuple[str, bytes]:
    """A tiny real pure-Python wheel, so ``pip install`` through a gateway has something to fetch."""
    module = project.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": b'GREETING = "hello from the simulated package index"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: rollcage\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return f"{module}-{version}-py3-none-any.whl", out.getvalue()


class PackageIndex:
    """A PEP 503 "simple" index over HTTP and HTTPS, plus ``/big?bytes=N`` for throughput tests."""

    def __init__(self) -> None:
        self.requests: list[IndexRequest] = []
        self.ca_cert_path: Path | None = None
        self.key_path: Path | None = None
        name, data = _wheel()
        self.files = {name: data}
        self._tls: ssl.SSLContext | None = None

    def prepare(self, workdir: Path) -> None:
        """Make a self-signed certificate for pypi.org and files.pythonhosted.org (it is its own CA)."""
        self.ca_cert_path, self.key_path = workdir / "index-cert.pem", workdir / "index-key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "1", "-subj", "/CN=pypi.org", "-addext", "subjectAltName=DNS:pypi.org,DNS:files.pythonhosted.org",
             "-keyout", str(self.key_path), "-out", str(self.ca_cert_path)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(self.ca_cert_path, self.key_path)

    def handle_http(self, conn: _Conn) -> None:
        _serve_http(conn, lambda h: self._respond("http", h, conn))

    def handle_https(self, conn: _Conn) -> None:
        assert self._tls is not None
        conn.sock = tls = self._tls.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        tls.do_handshake()  # after conn.sock is the TLS socket, so close() can interrupt a stalled handshake
        _serve_http(conn, lambda h: self._respond("https", h, conn))

    def _respond(self, scheme: str, h: _HttpHandler, conn: _Conn) -> None:
        self.requests.append(IndexRequest(scheme, h.command, h.path, _headers(h)))
        url = urlsplit(h.path)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/big":
            return self._big(h, url.query, conn)
        if parts == ["simple"]:
            links = "".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in self._projects())
            return _send(h, 200, _html("Simple index", links), "text/html; charset=utf-8")
        if len(parts) == 2 and parts[0] == "simple":
            wanted = _normalize(parts[1])
            links = "".join(
                f'<a href="/packages/{name}#sha256={hashlib.sha256(data).hexdigest()}">{name}</a>\n'
                for name, data in self.files.items()
                if _normalize(name.split("-")[0]) == wanted
            )
            if not links:
                return _send(h, 404, "no such project\n")
            return _send(h, 200, _html(f"Links for {wanted}", links), "text/html; charset=utf-8")
        if len(parts) == 2 and parts[0] == "packages" and parts[1] in self.files:
            return _send(h, 200, self.files[parts[1]], "application/octet-stream")
        return _send(h, 404, "not found\n")

    def _projects(self) -> list[str]:
        return sorted({_normalize(name.split("-")[0]) for name in self.files})

    @staticmethod
    def _big(h: _HttpHandler, query: str, conn: _Conn) -> None:
        try:
            size = int(parse_qs(query).get("bytes", ["1048576"])[0])
        except ValueError:
            return _send(h, 400, "bytes must be an integer\n")
        size = max(0, min(size, BIG_CAP))
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(size))
        h.end_headers()
        if h.command == "HEAD":
            return None
        sent = 0
        while sent < size and not conn.stop.is_set():  # at most BIG_CAP / 1 MiB rounds
            chunk = _ZEROS[: min(len(_ZEROS), size - sent)]
            h.wfile.write(chunk)
            sent += len(chunk)
        return None


def _normalize(name: str) -> str:
    return "-".join(filter(None, "".join(c if c.isalnum() else "-" for c in name.lower()).split("-")))


def _html(title: str, body: str) -> str:
    return f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n{body}</body></html>\n"


# --- private hosts -------------------------------------------------------------------------


@dataclass(eq=False)
class InternalHost:
    """A host on a private network that a sandbox must never reach; it records every connection.

    With ``http_body`` it answers HTTP (the wiki and its secret); otherwise it sends
    ``banner`` and records what the client says until it hangs up.
    """

    name: str
    ip: str
    port: int
    banner: bytes = b""
    http_body: str | None = None
    connections: list[tuple[str, int]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def handle(self, conn: _Conn) -> None:
        self.connections.append(tuple(conn.peer[:2]))  # type: ignore[arg-type]
        if self.http_body is not None:
            body = self.http_body
            return _serve_http(conn, lambda h: _send(h, 200, body, "text/html; charset=utf-8"))
        conn.sock.settimeout(5)
        conn.sock.sendall(self.banner)
        data = b""
        with contextlib.suppress(OSError):
            while len(data) < 65536 and not conn.stop.is_set():
                chunk = conn.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        if data:
            self.received.append(data)
        return None


def _echo(conn: _Conn) -> None:
    """Send back every byte until the client's EOF, then close (the client's EOF passed on)."""
    while not conn.stop.is_set():
        data = conn.sock.recv(1 << 16)
        if not data:
            return
        conn.sock.sendall(data)


def _internal_hosts() -> list[InternalHost]:
    wiki = f"<html><body><h1>Internal wiki</h1><p>Deploy key: {WIKI_SECRET}</p></body></html>\n"
    return [
        InternalHost("wiki.internal.corp", WIKI_IP, 80, http_body=wiki),
        InternalHost("db.internal.corp", DB_IP, 5432, banner=DB_BANNER),
        InternalHost("bastion.internal.corp", BASTION_IP, 22, banner=BASTION_BANNER),
    ]


# --- real sshd -----------------------------------------------------------------------------


class RealSshServer:
    """Debian's OpenSSH sshd, run inside the simulated namespace on 192.0.2.22:22.

    A real server, so tests see real tunnels (``ssh -L/-D``) and real banners; root may log
    in with ``client_key_path`` only.
    """

    def __init__(self, ip: str = SSH_IP, port: int = 22) -> None:
        self.ip, self.port = ip, port
        self.pid: int | None = None
        self.host_key_fingerprint = ""
        self.client_key_path: Path | None = None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, netns_name: str, sockets: NetnsSockets, workdir: Path) -> None:
        d = workdir / "ssh"
        d.mkdir(mode=0o700)
        host_key, client_key = d / "host_ed25519_key", d / "client_ed25519_key"
        for key, comment in ((host_key, "rcsim-host"), (client_key, "rcsim-client")):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        self.client_key_path = client_key
        authorized = d / "authorized_keys"
        shutil.copyfile(client_key.with_suffix(".pub"), authorized)
        self.host_key_fingerprint = _run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{host_key}.pub"]).split()[1]
        config = d / "sshd_config"
        config.write_text(
            f"ListenAddress {self.ip}:{self.port}\nHostKey {host_key}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            "AllowTcpForwarding yes\nGatewayPorts no\nLogLevel INFO\nStrictModes no\nUseDNS no\nPrintMotd no\n"
            "Subsystem sftp internal-sftp\n"
        )
        privsep = Path("/run/sshd")
        if not privsep.exists():
            privsep.mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir; shared, so left in place
        self.log_path = d / "sshd.log"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(  # `ip netns exec` execs sshd, so this pid is sshd's own
                ["ip", "netns", "exec", netns_name, "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True,
            )  # fmt: skip
        self.pid = self._proc.pid
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._proc.returncode}: {self.log_path.read_text()[-2000:]}")
            probe = sockets.socket()
            try:
                probe.settimeout(0.5)
                probe.connect((self.ip, self.port))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise TimeoutError(f"sshd did not listen on {self.ip}:{self.port} within 5 s")

    def close(self) -> None:
        """Terminate sshd and its session children (sshd leaves sessions running when it exits)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        sessions = _descendants(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            proc.terminate()
        for pid in sessions:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        deadline = time.monotonic() + 2
        while sessions and time.monotonic() < deadline:
            sessions = [pid for pid in sessions if _alive(pid)]
            time.sleep(0.02)
        for pid in sessions:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc), so they can be stopped by pid."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


# --- the whole internet --------------------------------------------------------------------


def _add_addresses() -> bool:
    """Inside the namespace: put every simulated address on lo; True when IPv6 works too.

    The gateway's upstream sockets live here, so this namespace stands in for the gateway
    host's egress and gets the setting such a host should have (README, "Gateway host").
    """
    from pyroute2 import IPRoute

    reuse_time_wait_ports()

    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        for ip in SIMULATED_IPV4:
            ipr.addr("add", index=lo, address=ip, prefixlen=32)
        try:
            ipr.addr("add", index=lo, address=METADATA_IP6, prefixlen=128)
        except Exception:
            return False
    return True


class SimulatedConnector:
    """What an egress gateway uses instead of the real network: the simulated DNS and connect()."""

    def __init__(self, internet: SimulatedInternet) -> None:
        self._internet = internet

    def resolve(self, name: str) -> str | None:
        return self._internet.resolve(name)

    def connect(self, ip: str, port: int, timeout: float = 5.0) -> socket.socket:
        """A socket created inside the simulated namespace and connected; errors are real OSErrors."""
        return self._internet._connect(ip, port, timeout)


class SimulatedInternet:
    """Pool, metadata, sshd, package index and private hosts in one namespace with no uplink."""

    def __init__(self, name_prefix: str = "rcsim") -> None:
        for _ in range(1000):
            name = f"{name_prefix}-{os.getpid()}-{next(_instances)}"
            if not netns_path(name).exists():
                break
        else:
            raise RuntimeError(f"no free namespace name for prefix {name_prefix!r}")
        self.netns_name = name
        self.netns_path = netns_path(name)
        self.names: dict[str, str] = dict(DEFAULT_NAMES)
        self.pool = FakeStratumPool()
        self.metadata = FakeMetadataService()
        self.ssh = RealSshServer()
        self.index = PackageIndex()
        self.internal = _internal_hosts()
        self.ipv6 = False
        self.workdir: Path | None = None
        self._acceptor: _Acceptor | None = None
        self._sockets: NetnsSockets | None = None
        self._made_netns = False
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    def __enter__(self) -> SimulatedInternet:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> SimulatedInternet:
        """Build the namespace and start every server; on any failure undo all of it."""
        if self._started:
            raise RuntimeError("SimulatedInternet can only be started once")
        self._started = True
        atexit.register(self.close)
        try:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.netns_name}-"))
            create_netns(self.netns_name)
            self._made_netns = True
            self.ipv6 = run_in_netns(self.netns_path, _add_addresses)
            self._sockets = NetnsSockets(self.netns_path)
            self._acceptor = acceptor = _Acceptor()
            for port in POOL_PORTS:
                acceptor.add(self._listen(POOL_IP, port), self.pool.handle)
            acceptor.add(self._listen(POOL2_IP, POOL2_PORT), self.pool.handle)
            acceptor.add(self._listen(METADATA_IP, 80), self.metadata.handle)
            if self.ipv6:
                try:
                    acceptor.add(self._listen(METADATA_IP6, 80), self.metadata.handle)
                except OSError:
                    self.ipv6 = False
            self.index.prepare(self.workdir)
            acceptor.add(self._listen(INDEX_IP, 80), self.index.handle_http)
            acceptor.add(self._listen(INDEX_IP, 443), self.index.handle_https)
            acceptor.add(self._listen(INDEX_IP, ECHO_PORT), _echo)
            for host in self.internal:
                acceptor.add(self._listen(host.ip, host.port), host.handle)
            acceptor.start()
            self.ssh.start(self.netns_name, self._sockets, self.workdir)
        except BaseException:
            self.close()
            raise
        return self

    def _listen(self, ip: str, port: int) -> socket.socket:
        assert self._sockets is not None
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = self._sockets.socket(family)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Stop servers and sshd, remove the namespace and temp files; safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sockets, self._sockets = self._sockets, None
        atexit.unregister(self.close)
        if self._acceptor is not None:
            with contextlib.suppress(Exception):
                self._acceptor.close()
        with contextlib.suppress(Exception):
            self.ssh.close()
        if sockets is not None:
            sockets.close()
        if self._made_netns:
            with contextlib.suppress(Exception):
                remove_netns(self.netns_name)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def resolve(self, name: str) -> str | None:
        """The simulated DNS: case-insensitive, trailing dot allowed; IP literals stand for themselves."""
        key = name.strip().rstrip(".").lower()
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(key))
        if key in self.names:
            return self.names[key]
        return next((ip for n, ip in self.names.items() if n.rstrip(".").lower() == key), None)

    def connector(self) -> SimulatedConnector:
        return SimulatedConnector(self)

    def connector_spec(self) -> dict[str, object]:
        """How a gateway process reaches this internet: see ``rollcage.gateway.connectors``."""
        return {"kind": "netns", "netns": str(self.netns_path), "names": dict(self.names)}

    def _connect(self, ip: str, port: int, timeout: float) -> socket.socket:
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
        except ValueError:
            raise OSError(errno.EINVAL, f"not an IP address: {ip!r}") from None
        with self._lock:
            if self._sockets is None:
                raise OSError(errno.ENETUNREACH, "the simulated internet is not running")
            sock = self._sockets.socket(family)
        try:
            sock.settimeout(timeout)
            sock.connect((ip, port))
        except BaseException:
            sock.close()
            raise
        return sock
