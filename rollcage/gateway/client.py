"""The supervisor's side of the egress gateway: start it, wire sandboxes to it, hear its events.

One :class:`Gateway` serves many sandboxes. It owns a network namespace (``rcgw-<pid>-<n>``)
with the nftables ruleset, a gateway process listening inside it, and one veth pair per
attached sandbox (``rcg<slot>`` in the gateway namespace, ``eth0`` in the sandbox). If the
gateway process dies, the control channel closes and every attached sandbox is stopped:
the sandboxes fail closed, they never fall back to an unpoliced path.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from rollcage.errors import HostError
from rollcage.gateway import nft
from rollcage.gateway.addressing import SandboxLink
from rollcage.gateway.policy import NetworkPolicy
from rollcage.net.netns import (
    NetnsSockets,
    create_netns,
    netns_path,
    remove_netns,
    reuse_time_wait_ports,
    run_in_netns,
)
from rollcage.sandbox import spawn

NETNS_PREFIX = "rcgw-"
SANDBOX_IFNAME = "eth0"
_START_TIMEOUT_S = 15.0
_REQUEST_TIMEOUT_S = 10.0
_instances = itertools.count()

EventHandler = Callable[[str, dict[str, Any]], None]
LostHandler = Callable[[str], None]


class GatewayError(HostError):
    """The gateway could not be started, or a sandbox could not be attached to it."""


class Gateway:
    """An egress gateway process and its namespace, shared by the sandboxes attached to it.

    ``connector`` says how upstream connections are made (see
    :mod:`rollcage.gateway.connectors`); ``outer_netns`` starts the gateway process inside
    another namespace first, so that even its "host" connector has no way out (tests).
    """

    def __init__(self, connector: dict[str, Any] | None = None, *, outer_netns: str | Path | None = None) -> None:
        self.connector = connector or {"kind": "host"}
        self.outer_netns = outer_netns
        self.netns_name = f"{NETNS_PREFIX}{os.getpid()}-{next(_instances)}"
        self.netns = netns_path(self.netns_name)
        self.pid = -1
        self._proc: Any = None
        self._control: socket.socket | None = None
        self._ns: NetnsSockets | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._handlers: dict[str, tuple[EventHandler, LostHandler]] = {}
        self._ready: Future[None] = Future()
        self._alive = False
        self._closed = False
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def _start(self) -> None:
        create_netns(self.netns_name)
        nft.install(self.netns)
        self._ns = NetnsSockets(self.netns)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control = ours
        command = [
            sys.executable, "-m", "rollcage.gateway.server", "--control-fd", str(theirs.fileno()),
            "--netns", str(self.netns), "--connector", json.dumps(self.connector),
            "--host-addresses", json.dumps(host_addresses()), "--parent", str(os.getpid()),
        ]  # fmt: skip
        if self.outer_netns is not None:
            command = ["nsenter", f"--net={netns_path(self.outer_netns)}", *command]
        try:
            self._proc = spawn.popen(command, pass_fds=(theirs.fileno(),), stdin=-3, cwd="/", start_new_session=True)
        finally:
            theirs.close()
        self.pid = self._proc.pid
        self._alive = True
        threading.Thread(target=self._read_loop, name="rollcage-gateway-reader", daemon=True).start()
        try:
            self._ready.result(_START_TIMEOUT_S)
        except Exception as exc:
            raise GatewayError(f"egress gateway did not start: {exc}") from None

    @property
    def alive(self) -> bool:
        return self._alive

    def close(self) -> None:
        """Stop the gateway process and remove its namespace (its veths go with it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            with contextlib.suppress(Exception):
                self._proc.wait(5)
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
        if self._ns is not None:
            self._ns.close()
        remove_netns(self.netns_name)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sandboxes ---------------------------------------------------------------------

    def attach(
        self,
        sandbox_id: str,
        slot: int,
        init_pid: int,
        pids_file: Path,
        policy: NetworkPolicy,
        on_event: EventHandler,
        on_lost: LostHandler,
    ) -> SandboxLink:
        """Give a sandbox (by its init pid) a link to this gateway under ``policy``."""
        link = SandboxLink.for_slot(slot)
        self._handlers[sandbox_id] = (on_event, on_lost)
        try:
            self._request({"op": "register", "sandbox": {
                "sandbox_id": sandbox_id, "ip": link.sandbox_ip, "ifname": link.gateway_ifname,
                "allow": list(policy.allow), "init_pid": init_pid, "pids_file": str(pids_file),
            }})  # fmt: skip
            assert self._ns is not None
            self._ns.call(lambda: _add_gateway_side(link, init_pid))
            run_in_netns(f"/proc/{init_pid}/ns/net", lambda: _configure_sandbox_side(link))
        except BaseException:
            self.detach(sandbox_id, slot)
            raise
        return link

    def detach(self, sandbox_id: str, slot: int) -> None:
        """Forget a sandbox; its link is deleted (and would vanish with its namespace anyway)."""
        if self._alive:  # its last flow events arrive before the reply, so the handler stays until then
            with contextlib.suppress(GatewayError):
                self._request({"op": "unregister", "sandbox_id": sandbox_id})
        self._handlers.pop(sandbox_id, None)
        if self._ns is not None and not self._closed:
            with contextlib.suppress(Exception):
                self._ns.call(lambda: _delete_link(SandboxLink.for_slot(slot).gateway_ifname))

    # -- control channel ---------------------------------------------------------------

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        if not self._alive or self._control is None:
            raise GatewayError("egress gateway is not running")
        request_id = next(self._ids)
        future: Future[dict[str, Any]] = Future()
        self._pending[request_id] = future
        try:
            with self._send_lock:
                self._control.sendall(json.dumps({**message, "id": request_id}).encode() + b"\n")
            reply = future.result(_REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise GatewayError(f"egress gateway did not answer: {exc}") from None
        finally:
            self._pending.pop(request_id, None)
        if reply.get("op") != "ok":
            raise GatewayError(f"egress gateway refused {message.get('op')}: {reply.get('error')}")
        return reply

    def _read_loop(self) -> None:
        assert self._control is not None
        stream = self._control.makefile("rb")
        try:
            for line in stream:
                self._dispatch(json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            self._on_exit()

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "event":
            handlers = self._handlers.get(message.get("sandbox_id", ""))
            if handlers is not None:
                with contextlib.suppress(Exception):  # a broken sink must not stop the channel
                    handlers[0](message["type"], message["data"])
        elif op == "ready":
            self._ready.set_result(None)
        elif (future := self._pending.get(message.get("id", -1))) is not None:
            future.set_result(message)

    def _on_exit(self) -> None:
        """The gateway is gone: every sandbox that relied on it is stopped (fail closed)."""
        self._alive = False
        if not self._ready.done():
            self._ready.set_exception(GatewayError("gateway process exited during start-up"))
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(OSError("gateway process exited"))
        reason = "egress gateway died" if not self._closed else "egress gateway closed"
        for sandbox_id, (_, on_lost) in list(self._handlers.items()):
            threading.Thread(target=on_lost, args=(reason,), name=f"rollcage-stop-{sandbox_id}", daemon=True).start()
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(5)


def _add_gateway_side(link: SandboxLink, init_pid: int) -> None:
    """Create the veth pair from the gateway namespace, its peer born inside the sandbox's."""
    fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=link.gateway_ifname, kind="veth", peer={"ifname": SANDBOX_IFNAME, "net_ns_fd": fd})
            _disable_ipv6(link.gateway_ifname)
            index = ipr.link_lookup(ifname=link.gateway_ifname)[0]
            ipr.addr("add", index=index, address=link.gateway_ip, prefixlen=link.prefixlen)
            ipr.link("set", index=index, state="up")
    finally:
        os.close(fd)


def _disable_ipv6(ifname: str) -> None:
    """IPv4 only on sandbox links: no neighbour discovery chatter, no unpoliced second stack."""
    with contextlib.suppress(OSError):  # /proc/sys/net follows the calling thread's namespace
        Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").write_text("1")


def _configure_sandbox_side(link: SandboxLink) -> None:
    """Address, route and TCP settings inside the sandbox: every connection it makes goes to
    one next hop, so TIME_WAIT ports are made reusable (a build fetching hundreds of files
    from one mirror must not slow down on its own closed connections)."""
    _disable_ipv6(SANDBOX_IFNAME)
    reuse_time_wait_ports()
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=SANDBOX_IFNAME)[0]
        ipr.addr("add", index=index, address=link.sandbox_ip, prefixlen=link.prefixlen)
        ipr.link("set", index=index, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=link.gateway_ip)


def _delete_link(ifname: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])


def host_addresses() -> list[str]:
    """Every address of the host namespace's interfaces, so flows to them are tagged ``host``."""
    with contextlib.suppress(Exception), IPRoute() as ipr:
        return sorted({str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr() if a.get_attr("IFA_ADDRESS")})
    return []


_shared: Gateway | None = None
_shared_lock = threading.Lock()


def shared_gateway() -> Gateway:
    """The process-wide gateway, started on first use.

    It uses the host connector unless ``ROLLCAGE_GATEWAY_CONNECTOR`` holds a connector spec
    (JSON), and starts inside ``ROLLCAGE_GATEWAY_OUTER_NETNS`` when that is set: how tests,
    benchmarks and the demo point the CLI at a simulated internet with no way out.
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            if _shared is not None:
                _shared.close()
            spec = os.environ.get("ROLLCAGE_GATEWAY_CONNECTOR")
            try:
                connector = json.loads(spec) if spec else None
            except ValueError:
                raise GatewayError(f"ROLLCAGE_GATEWAY_CONNECTOR is not JSON: {spec!r}") from None
            _shared = Gateway(connector, outer_netns=os.environ.get("ROLLCAGE_GATEWAY_OUTER_NETNS") or None)
        return _shared


def close_shared_gateway() -> None:
    """Stop the process-wide gateway (at exit, after the sandboxes that use it)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None
