"""The simulated internet: every server answers for real inside its namespace, and nothing is reachable
from (or leaks to) the host namespace. Nothing here sends a packet outside a namespace the test made."""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from rollcage.net.netns import list_netns
from rollcage.testing.internet import (
    BASTION_BANNER,
    DB_BANNER,
    FAKE_ACCESS_KEY_ID,
    FAKE_GCP_TOKEN,
    METADATA_ROLE,
    SIMULATED_IPV4,
    WIKI_SECRET,
    RealSshServer,
    SimulatedInternet,
    _alive,
    _descendants,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedInternet]:
    with SimulatedInternet() as internet:
        yield internet
    assert internet.netns_name not in list_netns()


def _http(
    sim: SimulatedInternet,
    ip: str,
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    tls_name: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sock = sim.connector().connect(ip, port)
    if tls_name is not None:
        ctx = ssl.create_default_context(cafile=str(sim.index.ca_cert_path))
        sock = ctx.wrap_socket(sock, server_hostname=tls_name)
    conn = http.client.HTTPConnection(tls_name or ip, port, timeout=10)
    conn.sock = sock
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class _Rpc:
    """Newline-delimited JSON over one connection to the fake pool."""

    def __init__(self, sim: SimulatedInternet, ip: str, port: int) -> None:
        self.sock = sim.connector().connect(ip, port)
        self.sock.settimeout(5)
        self.reader = self.sock.makefile("rb")

    def send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        return json.loads(self.reader.readline())

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_dns_names(sim: SimulatedInternet) -> None:
    assert sim.resolve("pool.supportxmr.com") == "203.0.113.10"
    assert sim.resolve("XMR.Pool.Example.") == "203.0.113.10"
    assert sim.resolve("eth.pool.example") == "203.0.113.11"
    assert sim.connector().resolve("files.pythonhosted.org") == "198.51.100.20"
    assert sim.resolve("metadata.google.internal") == "169.254.169.254"
    assert sim.resolve("wiki.internal.corp") == "10.0.0.5"
    assert sim.resolve("nowhere.example") is None
    assert sim.netns_name.startswith(f"rcsim-{os.getpid()}-")


def test_stratum_subscribe_authorize(sim: SimulatedInternet) -> None:
    before = sim.pool.connections
    rpc = _Rpc(sim, "203.0.113.10", 3333)
    try:
        rpc.send({"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10"]})
        sub = rpc.recv()
        assert sub["id"] == 1 and sub["error"] is None
        assert sub["result"][0][0][0] == "mining.notify" and sub["result"][2] == 4
        rpc.send({"id": 2, "method": "mining.authorize", "params": ["bc1qfakeworker.rig1", "x"]})
        assert rpc.recv() == {"id": 2, "result": True, "error": None}
        pushed = [rpc.recv(), rpc.recv()]
        assert [m["method"] for m in pushed] == ["mining.set_difficulty", "mining.notify"]
    finally:
        rpc.close()
    assert sim.pool.connections == before + 1
    login = next(x for x in sim.pool.logins if x["user"] == "bc1qfakeworker.rig1")
    assert login["method"] == "mining.authorize" and login["agent"] == "cgminer/4.10"
    assert login["server"] == ("203.0.113.10", 3333)
    assert {"id": 2, "method": "mining.authorize", "params": ["bc1qfakeworker.rig1", "x"]} in sim.pool.messages


@pytest.mark.parametrize(("ip", "port"), [("203.0.113.10", 443), ("203.0.113.10", 14444), ("203.0.113.11", 5555)])
def test_xmrig_login_and_submit(sim: SimulatedInternet, ip: str, port: int) -> None:
    wallet = f"4FAKEWALLET-{port}"
    rpc = _Rpc(sim, ip, port)
    try:
        params = {"login": wallet, "pass": "x", "agent": "XMRig/6.21.0 (Linux x86_64)", "algo": ["rx/0"]}
        rpc.send({"id": 1, "jsonrpc": "2.0", "method": "login", "params": params})
        reply = rpc.recv()
        assert reply["id"] == 1 and reply["error"] is None
        result = reply["result"]
        assert result["status"] == "OK" and result["id"]
        assert {"blob", "job_id", "target"} <= result["job"].keys()
        submit = {"id": result["id"], "job_id": result["job"]["job_id"], "nonce": "00000000", "result": "00" * 32}
        rpc.send({"id": 2, "jsonrpc": "2.0", "method": "submit", "params": submit})
        assert rpc.recv()["result"] == {"status": "OK"}
    finally:
        rpc.close()
    login = next(x for x in sim.pool.logins if x["user"] == wallet)
    assert login["method"] == "login" and login["agent"].startswith("XMRig/") and login["server"] == (ip, port)
    assert any(m.get("method") == "submit" and m["params"]["id"] == result["id"] for m in sim.pool.messages)


def test_metadata_serves_fake_credentials(sim: SimulatedInternet) -> None:
    path = f"/latest/meta-data/iam/security-credentials/{METADATA_ROLE}"
    status, _, body = _http(sim, "169.254.169.254", 80, "/latest/meta-data/iam/security-credentials/")
    assert (status, body.decode()) == (200, METADATA_ROLE)
    status, _, body = _http(sim, "169.254.169.254", 80, path, headers={"User-Agent": "aws-sdk-test"})
    assert status == 200 and json.loads(body)["AccessKeyId"] == FAKE_ACCESS_KEY_ID
    method, recorded_path, headers = sim.metadata.requests[-1]
    assert (method, recorded_path, headers["User-Agent"]) == ("GET", path, "aws-sdk-test")

    gcp = "/computeMetadata/v1/instance/service-accounts/default/token"
    assert _http(sim, "169.254.169.254", 80, gcp)[0] == 403
    status, headers, body = _http(sim, "169.254.169.254", 80, gcp, headers={"Metadata-Flavor": "Google"})
    assert status == 200 and json.loads(body)["access_token"] == FAKE_GCP_TOKEN
    assert headers["Metadata-Flavor"] == "Google"
    if sim.ipv6:
        assert _http(sim, "fd00:ec2::254", 80, "/latest/meta-data/")[0] == 200


def test_real_sshd_banner(sim: SimulatedInternet) -> None:
    with sim.connector().connect("192.0.2.22", 22) as sock:
        sock.settimeout(5)
        assert sock.recv(256).startswith(b"SSH-2.0-OpenSSH")
    assert sim.ssh.pid is not None and Path(f"/proc/{sim.ssh.pid}").exists()


def test_ssh_login_with_client_key(sim: SimulatedInternet) -> None:
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]  # fmt: skip
    argv = ["ip", "netns", "exec", sim.netns_name, "ssh", "-F", "/dev/null", "-i", str(sim.ssh.client_key_path)]
    done = subprocess.run([*argv, *opts, "root@192.0.2.22", "echo hi"], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hi"

    scan = ["ip", "netns", "exec", sim.netns_name, "ssh-keyscan", "-T", "5", "-t", "ed25519", "192.0.2.22"]
    keys = subprocess.run(scan, capture_output=True, text=True, timeout=20).stdout
    listed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=keys, capture_output=True, text=True, timeout=20)
    assert sim.ssh.host_key_fingerprint in listed.stdout


def test_package_index_http_and_https(sim: SimulatedInternet) -> None:
    status, _, body = _http(sim, "198.51.100.20", 80, "/simple/")
    assert status == 200 and b'href="/simple/rcsim-hello/"' in body
    status, _, body = _http(sim, "198.51.100.20", 80, "/simple/RCSIM_Hello/")
    assert status == 200 and b"rcsim_hello-1.0-py3-none-any.whl#sha256=" in body
    assert _http(sim, "198.51.100.20", 80, "/simple/no-such-thing/")[0] == 404

    for name in ("pypi.org", "files.pythonhosted.org"):
        status, _, body = _http(sim, "198.51.100.20", 443, "/simple/rcsim-hello/", tls_name=name)
        assert status == 200 and b"rcsim_hello" in body
    with pytest.raises(ssl.SSLCertVerificationError):
        _http(sim, "198.51.100.20", 443, "/simple/", tls_name="example.com")
    assert [r.scheme for r in sim.index.requests if r.path == "/simple/rcsim-hello/"] == ["https", "https"]


def test_pip_downloads_from_the_index(sim: SimulatedInternet, tmp_path: Path) -> None:
    argv = ["ip", "netns", "exec", sim.netns_name, sys.executable, "-m", "pip", "download", "--no-deps",
            "--disable-pip-version-check", "--no-input", "--no-cache-dir", "--trusted-host", "198.51.100.20",
            "--index-url", "http://198.51.100.20/simple/", "-d", str(tmp_path), "rcsim-hello"]  # fmt: skip
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "rcsim_hello-1.0-py3-none-any.whl").is_file()


def test_big_streams_exact_byte_count(sim: SimulatedInternet) -> None:
    size = 10_000_000
    sock = sim.connector().connect("198.51.100.20", 80)
    conn = http.client.HTTPConnection("198.51.100.20", timeout=10)
    conn.sock = sock
    try:
        conn.request("GET", f"/big?bytes={size}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == str(size)
        got = 0
        for _ in range(size):  # bounded; ends at EOF long before
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        assert got == size
    finally:
        conn.close()
    _, headers, body = _http(sim, "198.51.100.20", 80, f"/big?bytes={1 << 40}", method="HEAD")
    assert headers["Content-Length"] == str(1 << 30) and body == b""


def test_internal_hosts(sim: SimulatedInternet) -> None:
    wiki, db, bastion = sim.internal
    status, _, body = _http(sim, "10.0.0.5", 80, "/")
    assert status == 200 and WIKI_SECRET in body.decode()
    assert wiki.connections
    for host, banner in ((db, DB_BANNER), (bastion, BASTION_BANNER)):
        with sim.connector().connect(host.ip, host.port) as sock:
            sock.settimeout(5)
            assert sock.recv(256) == banner
            sock.sendall(b"hello\n")
        deadline = time.monotonic() + 5
        while not host.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert host.connections and host.received[-1] == b"hello\n"


def test_connect_errors_are_real(sim: SimulatedInternet) -> None:
    with pytest.raises(ConnectionRefusedError):
        sim.connector().connect("203.0.113.10", 1)
    with pytest.raises(OSError) as exc:  # inside the namespace: only lo, so there is no route at all
        sim.connector().connect("198.51.100.99", 80, timeout=2)
    assert exc.value.errno == errno.ENETUNREACH


def test_host_namespace_cannot_reach_the_simulated_internet(sim: SimulatedInternet) -> None:
    """Checked without risking a packet off the machine: the host here may have a default route."""
    for ip in SIMULATED_IPV4:
        with socket.socket() as sock, pytest.raises(OSError) as exc:
            sock.bind((ip, 0))
        assert exc.value.errno == errno.EADDRNOTAVAIL, ip
    with IPRoute() as ipr:
        try:
            route = ipr.route("get", dst="203.0.113.10")[0]
        except NetlinkError:
            route = None
        lo = ipr.link_lookup(ifname="lo")[0]
    if route is not None:  # an uplink exists: a connect would send a SYN out, so only check it is not local
        assert route["type"] != 2 and route.get_attr("RTA_OIF") != lo  # RTN_LOCAL
        return
    with socket.socket() as sock:  # no route at all: connect fails at once and nothing can be sent
        sock.settimeout(2)
        start = time.monotonic()
        with pytest.raises(OSError) as exc:
            sock.connect(("203.0.113.10", 3333))
    assert exc.value.errno == errno.ENETUNREACH and time.monotonic() - start < 2


def test_two_instances_then_close_cleans_up() -> None:
    with SimulatedInternet() as a, SimulatedInternet() as b:
        assert a.netns_name != b.netns_name
        assert {a.netns_name, b.netns_name} <= set(list_netns())
        for internet in (a, b):
            rpc = _Rpc(internet, "203.0.113.10", 4444)
            try:
                rpc.send({"id": 1, "method": "login", "params": {"login": internet.netns_name, "agent": "t"}})
                assert rpc.recv()["result"]["status"] == "OK"
            finally:
                rpc.close()
        assert [x["user"] for x in a.pool.logins] == [a.netns_name]
        assert [x["user"] for x in b.pool.logins] == [b.netns_name]
        pids = [a.ssh.pid, b.ssh.pid]
        workdirs = [a.workdir, b.workdir]
    assert not {a.netns_name, b.netns_name} & set(list_netns())
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(w is not None and w.exists() for w in workdirs)
    a.close()  # idempotent
    with pytest.raises(OSError):
        a.connector().connect("203.0.113.10", 3333)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_close_is_prompt_with_open_connections_and_ssh_sessions() -> None:
    internet = SimulatedInternet().start()
    client: subprocess.Popen[bytes] | None = None
    held: list[socket.socket] = []
    try:
        connector = internet.connector()
        held += [connector.connect("203.0.113.10", 3333), connector.connect("198.51.100.20", 443)]  # idle, no TLS
        key = str(internet.ssh.client_key_path)
        client = subprocess.Popen(
            ["ip", "netns", "exec", internet.netns_name, "ssh", "-F", "/dev/null", "-i", key, "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "root@192.0.2.22", "sleep 60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert internet.ssh.pid is not None
        session: list[int] = []
        deadline = time.monotonic() + 10
        while not session and time.monotonic() < deadline:
            session = [p for p in _descendants(internet.ssh.pid) if _comm(p) == "sleep"]
            time.sleep(0.05)
        assert session, "the ssh session never started"
        start = time.monotonic()
        internet.close()
        assert time.monotonic() - start < 3
        assert not any(_alive(p) for p in session)
        assert client.wait(timeout=10) != 0  # the server side went away
    finally:
        internet.close()
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        for sock in held:
            sock.close()


def test_failed_start_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("sshd would not start")

    monkeypatch.setattr(RealSshServer, "start", broken)
    internet = SimulatedInternet()
    with pytest.raises(RuntimeError, match="sshd would not start"):
        internet.start()
    assert internet.netns_name not in list_netns()
    assert internet.workdir is not None and not internet.workdir.exists()
