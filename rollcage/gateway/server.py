"""The egress gateway process: intercepts, judges and records every packet a sandbox sends out.

It runs as its own process (``python -m rollcage.gateway.server``) so that its death is a
clean signal: its listening sockets vanish, the nftables redirects in its namespace lead
nowhere, and the supervisor, which sees the control channel close, stops every sandbox
that depended on it. Listeners live in the gateway namespace (``rcgw-<supervisor pid>``);
upstream sockets come from the connector, i.e. from the namespace the process started in
or from a simulated internet.

Control channel (a socketpair inherited as ``--control-fd``), JSON lines:
supervisor → gateway ``{"op": "register", "id": n, "sandbox": {...}}``, ``{"op": "unregister",
"id": n, "sandbox_id": ...}``; gateway → supervisor ``{"op": "ready"}``, ``{"op": "ok"|"error",
"id": n}`` and ``{"op": "event", "sandbox_id": ..., "type": "flow"|"dns"|"net_drop", "data": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import uvloop

from rollcage.gateway import nft
from rollcage.gateway.addressing import GATEWAY_DNS_PORT, GATEWAY_TCP_PORT
from rollcage.gateway.connectors import Connector, connector_from_spec
from rollcage.gateway.detect import (
    DnsRateTracker,
    ScanDetector,
    destination_tags,
    dns_tunnel_indicators,
    is_internal,
    is_mining_domain,
    is_mining_port,
)
from rollcage.gateway.owner import OwnerHint, SocketOwner, find_owner
from rollcage.gateway.policy import Decision, NetworkPolicy
from rollcage.gateway.protocols import MAX_INSPECT, Identification, identify
from rollcage.gateway.relay import LoopRelay
from rollcage.gateway.sockdiag import SockDiag
from rollcage.net.netns import NetnsSockets, run_in_netns

SO_ORIGINAL_DST = 80
INSPECT_TIMEOUT_S = 1.0  # a client that says nothing (server-speaks-first protocols) is judged on its destination
CONNECT_TIMEOUT_S = 10.0
DROP_POLL_S = 2.0
OPEN_EVENT_DELAY_S = 1.0
ACCEPT_BATCH = 64
ACCEPT_RETRY_S = 0.05
_RST = struct.pack("ii", 1, 0)
_NOTHING_YET = identify(b"")


@dataclass
class SandboxEntry:
    """What the gateway knows about one attached sandbox."""

    sandbox_id: str
    ip: str
    ifname: str
    policy: NetworkPolicy
    init_pid: int
    pids_file: str
    resolved: dict[str, set[str]] = field(default_factory=dict)  # name -> addresses our resolver gave out
    names_by_ip: dict[str, str] = field(default_factory=dict)
    drops: dict[int, int] = field(default_factory=dict)  # ip protocol -> packets counted so far
    relays: dict[int, tuple[asyncio.Future[None], socket.socket, socket.socket]] = field(default_factory=dict)
    diag: SockDiag | None = None  # sock_diag socket inside the sandbox's namespace, for owner lookups
    owner_hint: OwnerHint = field(default_factory=OwnerHint)  # whoever connected last is the likeliest next owner
    decisions: dict[tuple[str, int, str | None], Decision] = field(default_factory=dict)

    def decide(self, dst_ip: str, dst_port: int, domain: str | None) -> Decision:
        """The policy's decision, remembered per destination until the resolver hands out new
        addresses (a client that reconnects to one upstream is judged once, not per connection)."""
        key = (dst_ip, dst_port, domain)
        decision = self.decisions.get(key)
        if decision is None:
            if len(self.decisions) >= 4096:
                self.decisions.clear()
            decision = self.policy.decide(dst_ip, dst_port, domain, self.resolved.get(domain or "", ()))
            self.decisions[key] = decision
        return decision

    def learned(self, name: str, addresses: list[str]) -> None:
        """Our resolver gave ``addresses`` for ``name`` to this sandbox."""
        self.resolved.setdefault(name, set()).update(addresses)
        for address in addresses:
            self.names_by_ip[address] = name
        self.decisions.clear()


def original_destination(conn: socket.socket) -> tuple[str, int]:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


def reset(conn: socket.socket) -> None:
    """Close with RST, so the client sees a refused connection, not a clean EOF."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
    conn.close()


def wire_indicators(ident: Identification, domain: str | None, dst_port: int, tags: set[str]) -> list[str]:
    """The detections that the first bytes and the destination alone support."""
    found = []
    if ident.protocol == "stratum" or ident.fields.get("mining_method"):
        found.append("stratum")
    if ident.protocol == "ssh":
        found.append("outbound_ssh")
    if domain and is_mining_domain(domain):
        found.append("mining_domain")
    if is_mining_port(dst_port):
        found.append("mining_port")
    if is_internal(tags):
        found.append("internal")
    found.extend(sorted(t for t in tags if t in ("metadata", "host", "private", "link_local", "cgnat", "multicast")))
    return found


class GatewayServer:
    def __init__(self, control: socket.socket, netns: Path, connector: Connector, host_addresses: list[str]) -> None:
        self.control = control
        self.netns = netns
        self.connector = connector
        self.host_addresses = host_addresses
        self.by_id: dict[str, SandboxEntry] = {}
        self.by_ip: dict[str, SandboxEntry] = {}
        self.by_ifname: dict[str, SandboxEntry] = {}
        self.scans = ScanDetector()
        self.dns_rates = DnsRateTracker()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: list[bytes] = []
        self._ns = NetnsSockets(netns)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tag_cache: dict[str, set[str]] = {}

    def _spawn(self, coro: Any) -> None:
        """Run a per-connection task, holding a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def tags_of(self, ip: str) -> set[str]:
        """``destination_tags`` with a small cache: the same few upstreams recur constantly."""
        tags = self._tag_cache.get(ip)
        if tags is None:
            if len(self._tag_cache) > 4096:
                self._tag_cache.clear()
            tags = self._tag_cache[ip] = destination_tags(ip, self.host_addresses)
        return set(tags)

    # -- control channel ---------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message; everything queued in a loop iteration goes out in one write."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(json.dumps(message, separators=(",", ":"), default=str).encode())

    def _flush(self) -> None:
        if self._outbox and self._writer is not None:
            self._outbox.append(b"")
            self._writer.write(b"\n".join(self._outbox))
            self._outbox.clear()

    def event(self, entry: SandboxEntry, type_: str, data: dict[str, Any]) -> None:
        self.send({"op": "event", "sandbox_id": entry.sandbox_id, "type": type_, "data": data})

    async def serve_control(self) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self.control, limit=1 << 20)
        self.send({"op": "ready"})
        while line := await reader.readline():
            try:
                message = json.loads(line)
                if message.get("op") == "unregister":
                    await self.end_relays(message["sandbox_id"])
                reply = self.handle_control(message)
            except Exception as exc:  # a bad message gets an error reply, the gateway stays up
                reply = {"op": "error", "error": f"{type(exc).__name__}: {exc}"}
                with contextlib.suppress(Exception):
                    reply["id"] = json.loads(line).get("id")
            self.send(reply)
            self._flush()
            await self._writer.drain()
        # the supervisor is gone: nothing may outlive it
        raise SystemExit(0)

    async def end_relays(self, sandbox_id: str) -> None:
        """Close a leaving sandbox's open flows now, so their ``closed`` events precede the goodbye."""
        entry = self.by_id.get(sandbox_id)
        if entry is None or not entry.relays:
            return
        for _, conn, upstream in entry.relays.values():
            for sock in (conn, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await asyncio.wait([f for f, _, _ in entry.relays.values()], timeout=1.0)

    def handle_control(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "register":
            spec = message["sandbox"]
            entry = SandboxEntry(
                sandbox_id=spec["sandbox_id"], ip=spec["ip"], ifname=spec["ifname"],
                policy=NetworkPolicy.from_entries(spec["allow"]), init_pid=int(spec["init_pid"]),
                pids_file=spec["pids_file"],
            )  # fmt: skip
            with contextlib.suppress(OSError):
                entry.diag = run_in_netns(f"/proc/{entry.init_pid}/ns/net", SockDiag)
            self.by_id[entry.sandbox_id] = entry
            self.by_ip[entry.ip] = entry
            self.by_ifname[entry.ifname] = entry
        elif op == "unregister":
            entry = self.by_id.pop(message["sandbox_id"], None)
            if entry is not None:
                if entry.diag is not None:
                    entry.diag.close()
                self.by_ip.pop(entry.ip, None)
                self.by_ifname.pop(entry.ifname, None)
                self.scans.forget(entry.sandbox_id)
                self.dns_rates.forget(entry.sandbox_id)
        elif op != "ping":
            raise ValueError(f"unknown op {op!r}")
        return {"op": "ok", "id": message.get("id")}

    # -- TCP interception --------------------------------------------------------------

    async def serve_tcp(self) -> None:
        loop = asyncio.get_running_loop()

        def listener() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", GATEWAY_TCP_PORT))
            sock.listen(4096)
            sock.setblocking(False)
            return sock

        server = self._ns.call(listener)

        def accept_ready() -> None:
            """Take every connection that is waiting (up to a batch), one task each."""
            for _ in range(ACCEPT_BATCH):
                try:
                    fd, peer = server._accept()  # socket.accept() minus its per-call enum conversions
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:  # out of descriptors: leave the rest queued, try again shortly
                    loop.remove_reader(server.fileno())  # (a level-triggered reader would spin meanwhile)
                    paused.append(loop.call_later(ACCEPT_RETRY_S, resume))
                    return
                conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
                conn.setblocking(False)
                self._spawn(self.handle_connection(conn, peer))

        def resume() -> None:
            paused.clear()
            loop.add_reader(server.fileno(), accept_ready)

        paused: list[asyncio.TimerHandle] = []
        loop.add_reader(server.fileno(), accept_ready)
        try:
            await asyncio.Future()  # serve until cancelled
        finally:
            for handle in paused:
                handle.cancel()
            loop.remove_reader(server.fileno())
            server.close()

    async def handle_connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        entry = self.by_ip.get(peer[0])
        if entry is None:
            reset(conn)  # not from a sandbox we serve
            return
        try:
            dst_ip, dst_port = original_destination(conn)
        except OSError:
            reset(conn)
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Right away, on the loop: a client that sends and exits loses its socket's owner within microseconds.
        owner = find_owner(entry.init_pid, entry.pids_file, "tcp", *peer, dst=(dst_ip, dst_port), diag=entry.diag,
                           hint=entry.owner_hint)  # fmt: skip
        head, ident = await self.read_head(conn)
        domain = _claimed_name(ident) or entry.names_by_ip.get(dst_ip)
        decision = entry.decide(dst_ip, dst_port, domain)
        if decision.allow and (ident.protocol == "stratum" or ident.fields.get("mining_method")):
            # No policy entry can allow mining: a pool behind an allowed name or address is still a pool.
            decision = Decision(False, "mining protocol on the wire", decision.matched)
        tags = self.tags_of(dst_ip)
        indicators = wire_indicators(ident, domain, dst_port, tags)
        scan = self.scans.observe(entry.sandbox_id, dst_ip, dst_port, time.monotonic())
        if scan:
            indicators.append("scan")
        flow = {
            "dst_ip": dst_ip, "dst_port": dst_port, "domain": domain, "protocol": ident.protocol,
            "decision": "allow" if decision.allow else "deny", "reason": decision.reason,
            "indicators": indicators, "tags": sorted(tags), "details": _details(ident),
            "src_port": peer[1], "bytes_out": 0, "bytes_in": 0, **_owner_fields(owner),
        }  # fmt: skip
        if scan:
            flow["scan"] = scan
        if not decision.allow:
            reset(conn)
            flow["phase"] = "denied"
            flow["bytes_out_attempted"] = len(head)
            self.event(entry, "flow", flow)
            return
        upstream = await self.connect_upstream(dst_ip, dst_port)
        if isinstance(upstream, str):
            reset(conn)
            self.event(entry, "flow", {**flow, "phase": "failed", "reason": f"upstream: {upstream}"})
            return
        try:
            if head:
                sent = _send_some(upstream, head)  # fits in a fresh socket's buffer: no await
                if sent < len(head):
                    await loop.sock_sendall(upstream, head[sent:])
        except OSError as exc:
            reset(conn)
            reset(upstream)
            self.event(entry, "flow", {**flow, "phase": "failed", "reason": f"upstream: {exc.strerror or exc}"})
            return
        # Every flow ends with one "closed" event; an "open" one comes first for flows that carry
        # an indicator (at once) or outlive OPEN_EVENT_DELAY_S - short clean flows cost one event.
        opening: asyncio.TimerHandle | None = None
        if indicators:
            self.event(entry, "flow", {**flow, "phase": "open"})
        else:
            opening = loop.call_later(OPEN_EVENT_DELAY_S, self.event, entry, "flow", {**flow, "phase": "open"})
        started = time.monotonic()
        finished: asyncio.Future[None] = loop.create_future()
        key = id(finished)
        entry.relays[key] = (finished, conn, upstream)

        def report(closed: dict[str, Any]) -> None:
            if opening is not None:
                opening.cancel()
            entry.relays.pop(key, None)
            self.event(entry, "flow", closed)
            finished.set_result(None)

        def done(bytes_out: int, bytes_in: int, error: str | None) -> None:
            closed = {**flow, "phase": "closed", "bytes_out": bytes_out + len(head), "bytes_in": bytes_in,
                      "duration_s": round(time.monotonic() - started, 6)}  # fmt: skip
            if error:
                closed["error"] = error
            report(closed)

        LoopRelay(loop, conn, upstream, done)

    async def read_head(self, conn: socket.socket) -> tuple[bytes, Identification]:
        """Read what the client sends first until the protocol is known (or it goes quiet).

        The socket is tried before anything is awaited: a client that sends right after
        connecting has usually done so by the time its owner is known.
        """
        loop = asyncio.get_running_loop()
        head = b""
        ident = _NOTHING_YET
        deadline = None
        while not ident.final and len(head) < MAX_INSPECT:
            try:
                chunk = conn.recv(MAX_INSPECT - len(head))
            except BlockingIOError:
                if deadline is None:
                    deadline = loop.time() + INSPECT_TIMEOUT_S
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):  # no extra task per read, unlike wait_for
                        chunk = await loop.sock_recv(conn, MAX_INSPECT - len(head))
                except (TimeoutError, OSError):
                    break
            except OSError:
                break
            if not chunk:
                break
            head += chunk
            ident = identify(head)
        return head, ident

    async def connect_upstream(self, ip: str, port: int) -> socket.socket | str:
        loop = asyncio.get_running_loop()
        try:
            sock = self.connector.socket_for(ip)
        except (OSError, ValueError) as exc:
            return str(exc)
        error = sock.connect_ex((ip, port))
        if error == errno.EINPROGRESS and not _connected(sock):
            ready = loop.create_future()
            loop.add_writer(sock.fileno(), _resolve, ready)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await ready
            except TimeoutError:
                error = errno.ETIMEDOUT
            else:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            finally:
                loop.remove_writer(sock.fileno())
        elif error == errno.EINPROGRESS:
            error = 0  # a nearby upstream: the handshake finished inside connect()
        if error:
            sock.close()
            return "connect timed out" if error == errno.ETIMEDOUT else os.strerror(error)
        return sock

    # -- DNS ---------------------------------------------------------------------------

    async def serve_dns(self) -> None:
        loop = asyncio.get_running_loop()

        def listener() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", GATEWAY_DNS_PORT))
            sock.setblocking(False)
            return sock

        transport, _ = await loop.create_datagram_endpoint(lambda: _DnsProtocol(self), sock=self._ns.call(listener))
        try:
            await asyncio.Future()  # serve until cancelled
        finally:
            transport.close()

    async def answer_dns(self, transport: asyncio.DatagramTransport, data: bytes, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        entry = self.by_ip.get(peer[0])
        if entry is None:
            return
        owner = await _owner(loop.run_in_executor(None, find_owner, entry.init_pid, entry.pids_file, "udp", *peer))
        try:
            query = dns.message.from_wire(data)
            question = query.question[0]
        except (dns.exception.DNSException, IndexError, ValueError):
            malformed = {"qname": None, "qtype": None, "answer": [], "decision": "deny", "reason": "malformed query"}
            self.event(entry, "dns", {**malformed, "bytes": len(data), **_owner_fields(owner)})
            return
        qname = question.name.to_text().rstrip(".").lower()
        qtype = dns.rdatatype.to_text(question.rdtype)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        answer: list[str] = []
        if entry.policy.allows_name(qname):
            decision, reason = "allow", "name allowed by policy"
            if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses = await loop.run_in_executor(None, self.connector.resolve, qname)
                version = ":" if question.rdtype == dns.rdatatype.AAAA else "."
                answer = [a for a in addresses if version in a]
                if answer:
                    response.answer.append(dns.rrset.from_text_list(question.name, 30, "IN", qtype, answer))
                    entry.learned(qname, answer)
                elif not addresses:
                    response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            decision, reason = "deny", "name not allowed by policy"
            response.set_rcode(dns.rcode.REFUSED)
        indicators = []
        if is_mining_domain(qname):
            indicators.append("mining_domain")
        tunnel = dns_tunnel_indicators(qname)
        if tunnel:
            indicators.append("dns_tunnel")
        rate = self.dns_rates.observe(entry.sandbox_id, time.monotonic())
        if rate:
            indicators.append("dns_rate")
        with contextlib.suppress(OSError):
            transport.sendto(response.to_wire(), peer)
        event = {"qname": qname, "qtype": qtype, "answer": answer, "decision": decision, "reason": reason,
                 "indicators": indicators, **_owner_fields(owner)}  # fmt: skip
        if tunnel:
            event["tunnel"] = tunnel
        if rate:
            event["rate"] = rate
        self.event(entry, "dns", event)

    # -- everything else: dropped by nftables, counted here ----------------------------

    async def poll_drops(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(DROP_POLL_S)
            if not self.by_ifname:
                continue
            try:
                counts = await loop.run_in_executor(None, nft.drop_counters, self.netns)
            except (RuntimeError, OSError, ValueError):
                continue
            for (ifname, proto), packets in counts.items():
                entry = self.by_ifname.get(ifname)
                if entry is None:
                    continue
                new = packets - entry.drops.get(proto, 0)
                if new > 0:
                    entry.drops[proto] = packets
                    name = nft.PROTOCOL_NAMES.get(proto, str(proto))
                    self.event(entry, "net_drop", {"protocol": name, "count": new, "total": packets})

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="rollcage-gw"))
        tasks = [asyncio.create_task(c) for c in (self.serve_tcp(), self.serve_dns(), self.poll_drops())]
        try:
            await self.serve_control()
        finally:
            for task in tasks:
                task.cancel()


class _DnsProtocol(asyncio.DatagramProtocol):
    """Hands each query on the resolver socket to its own task."""

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDP transport does not subclass it

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.server._spawn(self.server.answer_dns(self.transport, data, addr))


async def _owner(lookup: asyncio.Future[SocketOwner | None]) -> SocketOwner | None:
    try:
        return await asyncio.wait_for(lookup, 0.5)
    except (TimeoutError, OSError):
        return None


def _connected(sock: socket.socket) -> bool:
    """Whether a non-blocking connect has already completed (a peer name exists only then)."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _send_some(sock: socket.socket, data: bytes) -> int:
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def _claimed_name(ident: Identification) -> str | None:
    """The name a client asked for (TLS SNI or HTTP Host); an address literal names nothing."""
    name = ident.fields.get("sni") or ident.fields.get("host")
    if not name:
        return None
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return str(name)
    return None


def _owner_fields(owner: SocketOwner | None) -> dict[str, Any]:
    if owner is None:
        return {"pid": None, "cmdline": None, "ancestors": []}
    return {"pid": owner.pid, "cmdline": owner.cmdline, "ancestors": owner.ancestors}


def _details(ident: Identification) -> dict[str, Any]:
    """Protocol fields worth keeping in the event (SNI, Host, banner, mining login...)."""
    return {k: v for k, v in ident.fields.items() if k != "head" and v not in (None, [], "")}


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop: the per-connection path (accept, recv, connect, readiness callbacks) is the
    gateway's hot loop, and uvloop runs it in C."""
    return uvloop.new_event_loop()


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--netns", required=True, help="the gateway namespace (already set up)")
    parser.add_argument("--connector", default='{"kind": "host"}', help="connector spec as JSON")
    parser.add_argument("--host-addresses", default="[]", help="JSON list of the host's own addresses")
    parser.add_argument("--parent", type=int, required=True, help="supervisor pid")
    args = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() != args.parent:
        sys.exit("rollcage gateway: supervisor already gone")
    control = socket.socket(fileno=args.control_fd)
    connector = connector_from_spec(json.loads(args.connector))
    server = GatewayServer(control, Path(args.netns), connector, json.loads(args.host_addresses))
    with contextlib.suppress(KeyboardInterrupt, SystemExit), asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(server.run())
    connector.close()
    os._exit(0)


if __name__ == "__main__":
    main()
