"""Egress gateway speed: bulk throughput, added connect latency, connection rate, idle CPU.

Every measurement runs the same client program inside a sandbox twice, side by side:
once to a server on the sandbox's own loopback (the baseline), once through the gateway
to the same server program running in the simulated internet (a namespace this script
creates; the gateway runs inside an offline namespace, so nothing can leave the machine).

- throughput: one TCP stream of ``--bulk-mb`` MB, server → client; ratio gateway/loopback.
- latency: sequential connect + 1-byte request + 1-byte reply; added = p50(gw) - p50(lo).
- rate: new connections per second (connect, request, reply, close) from 4 client threads,
  over ``--rate-seconds`` (3 s by default; the client closes first, so each connection
  leaves a TIME_WAIT port in the sandbox and at the gateway's upstream side, which is why
  both namespaces reuse TIME_WAIT ports; try ``--rate-seconds 30`` for the sustained rate).
  The upstream echo server is one selector thread, so it costs the shared cores little.
- idle CPU: the gateway process's CPU time while ``--idle`` networked sandboxes sit idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import NullSink, report

from rollcage import Sandbox, SandboxConfig
from rollcage.gateway.client import Gateway
from rollcage.net.netns import create_netns, remove_netns
from rollcage.testing import SimulatedInternet

UPSTREAM_IP = "198.51.100.20"  # the package-index address of the simulated internet
BULK_PORT, ECHO_PORT = 9100, 9101

SERVER = r"""
import selectors, socket, sys, threading
host, bulk_port, echo_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ZEROS = bytes(1 << 20)
def bulk(conn):
    with conn:
        n = int(conn.makefile("rb").readline())
        while n > 0:
            conn.sendall(ZEROS[: min(n, len(ZEROS))]); n -= len(ZEROS)
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(4096)
    return s
def serve_bulk(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=bulk, args=(c,), daemon=True).start()
def serve_echo(s):
    # One thread for all echo connections: the upstream should cost as little as it can,
    # since it shares the machine's cores with the gateway under test.
    sel = selectors.DefaultSelector(); s.setblocking(False); sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is s:
                while True:
                    try:
                        c, _ = s.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(c, selectors.EVENT_READ)
                continue
            c = key.fileobj
            try:
                data = c.recv(64)
                if data:
                    c.send(data)
                    continue
            except OSError:
                pass
            sel.unregister(c); c.close()
threading.Thread(target=serve_bulk, args=(listen(bulk_port),), daemon=True).start()
echo = listen(echo_port)
print("ready", flush=True)
serve_echo(echo)
"""

CLIENT = r"""
import json, socket, sys, threading, time
mode, host = sys.argv[1], sys.argv[2]
def conn(port):
    s = socket.create_connection((host, port), timeout=10); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
if mode == "bulk":
    n = int(sys.argv[3]); buf = bytearray(1 << 20); view = memoryview(buf)
    start = time.perf_counter(); s = conn(int(sys.argv[4])); s.sendall(b"%d\n" % n); got = 0
    while got < n:
        k = s.recv_into(view)
        if not k: break
        got += k
    print(json.dumps({"bytes": got, "seconds": time.perf_counter() - start}))
elif mode == "latency":
    port, count, samples = int(sys.argv[3]), int(sys.argv[4]), []
    for _ in range(count):
        start = time.perf_counter(); s = conn(port); s.sendall(b"x"); s.recv(1)
        samples.append(time.perf_counter() - start); s.close()
    print(json.dumps(samples))
elif mode == "rate":
    port, seconds, threads = int(sys.argv[3]), float(sys.argv[4]), 4
    counts = [0] * threads; stop = time.perf_counter() + seconds
    def work(i):
        while time.perf_counter() < stop:
            s = conn(port); s.sendall(b"x"); s.recv(1); s.close(); counts[i] += 1
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter(); [t.start() for t in ts]; [t.join() for t in ts]
    print(json.dumps({"connections": sum(counts), "seconds": time.perf_counter() - start}))
"""


def client(sb: Sandbox, *args: object) -> object:
    r = sb.run("python3 /tmp/client.py " + " ".join(str(a) for a in args), timeout=120)
    if r.exit_code != 0:
        raise RuntimeError(f"benchmark client failed: {r.output[-2000:]}")
    return json.loads(r.output.strip().splitlines()[-1])


def ms_p50(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[len(ordered) // 2] * 1000, 4)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk-mb", type=int, default=2048)  # ~1 s through the gateway: a steadier ratio
    parser.add_argument("--latency-n", type=int, default=300)
    parser.add_argument("--rate-seconds", type=float, default=3.0)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()

    outer = f"rcbench-offline-{os.getpid()}"
    create_netns(outer)
    upstream = None
    try:
        with SimulatedInternet() as internet, Gateway(internet.connector_spec(), outer_netns=outer) as gw:
            server_file = Path(internet.workdir or "/tmp") / "bench_server.py"
            server_file.write_text(SERVER)
            upstream = subprocess.Popen(
                ["nsenter", f"--net={internet.netns_path}", sys.executable, str(server_file), UPSTREAM_IP,
                 str(BULK_PORT), str(ECHO_PORT)], stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
            config = SandboxConfig(memory="1g", cpus=2.0, pids=256, network=[f"{UPSTREAM_IP}:{BULK_PORT}",
                                                                             f"{UPSTREAM_IP}:{ECHO_PORT}"])  # fmt: skip
            with Sandbox(config, gateway=gw, events=NullSink()) as sb:
                sb.write_file("/tmp/client.py", CLIENT)
                sb.write_file("/tmp/server.py", SERVER)
                sb.run(f"python3 /tmp/server.py 127.0.0.1 {BULK_PORT} {ECHO_PORT} > /tmp/server.log 2>&1 &")
                for _ in range(100):
                    if "ready" in sb.run("cat /tmp/server.log").output:
                        break
                    time.sleep(0.05)
                n = args.bulk_mb * 1_000_000
                client(sb, "bulk", "127.0.0.1", 10_000_000, BULK_PORT)  # warm-up
                lo_bulk = client(sb, "bulk", "127.0.0.1", n, BULK_PORT)
                gw_bulk = client(sb, "bulk", UPSTREAM_IP, n, BULK_PORT)
                lo_lat = client(sb, "latency", "127.0.0.1", ECHO_PORT, args.latency_n)
                gw_lat = client(sb, "latency", UPSTREAM_IP, ECHO_PORT, args.latency_n)
                lo_rate = client(sb, "rate", "127.0.0.1", ECHO_PORT, args.rate_seconds)
                gw_cpu_before = cpu_seconds(gw.pid)
                gw_rate = client(sb, "rate", UPSTREAM_IP, ECHO_PORT, args.rate_seconds)
                gw_rate_cpu = cpu_seconds(gw.pid) - gw_cpu_before

            idle = [Sandbox(SandboxConfig(memory="64m", pids=32, network=[]), gateway=gw, events=NullSink())
                    for _ in range(args.idle)]  # fmt: skip
            try:
                time.sleep(2.5)  # let start-up settle
                before, start = cpu_seconds(gw.pid), time.monotonic()
                time.sleep(args.idle_seconds)
                idle_pct = (cpu_seconds(gw.pid) - before) / (time.monotonic() - start) * 100
            finally:
                for sb in idle:
                    sb.close()
    finally:
        if upstream is not None:
            upstream.kill()
            upstream.wait()
        remove_netns(outer)

    def gbps(r: dict) -> float:
        return round(r["bytes"] * 8 / r["seconds"] / 1e9, 3)

    ratio = gbps(gw_bulk) / gbps(lo_bulk)
    added = round(ms_p50(gw_lat) - ms_p50(lo_lat), 4)
    rate = gw_rate["connections"] / gw_rate["seconds"]
    report("gateway", {
        "throughput": {"bytes": n, "loopback_gbit_s": gbps(lo_bulk), "gateway_gbit_s": gbps(gw_bulk),
                       "ratio": round(ratio, 3), "target_ratio": 0.40, "meets_target": ratio >= 0.40},
        "connect_latency_ms": {"loopback_p50": ms_p50(lo_lat), "gateway_p50": ms_p50(gw_lat), "added_p50": added,
                               "target_added_p50": 1.0, "meets_target": added <= 1.0, "samples": args.latency_n},
        "connection_rate": {"loopback_per_s": round(lo_rate["connections"] / lo_rate["seconds"], 1),
                            "gateway_per_s": round(rate, 1), "target_per_s": 2000, "meets_target": rate >= 2000,
                            "gateway_cpu_s": round(gw_rate_cpu, 3),
                            "gateway_cpu_ms_per_conn": round(gw_rate_cpu / max(gw_rate["connections"], 1) * 1000, 3)},
        "idle": {"sandboxes": args.idle, "seconds": args.idle_seconds, "gateway_cpu_pct_of_core": round(idle_pct, 3),
                 "target_pct": 1.0, "meets_target": idle_pct < 1.0},
    })  # fmt: skip


if __name__ == "__main__":
    main()
