"""Exec sensor: every process executed in a sandbox, as ``exec`` event data.

:class:`ExecMonitor` listens to the kernel's process-events connector (netlink,
``CN_IDX_PROC``: fork, exec, exit for every process on the host; needs root). One
background thread per supervisor process serves every sandbox: a sandbox registers its
cgroup and a callback, and the thread maps each exec'd pid to a sandbox — by inheritance
along fork events from pids it already knows (no file read), else by reading
``/proc/<pid>/cgroup`` once. On exec it reads exe, argv, cwd, ppid, comm, uid and the
parent's cmdline from /proc, and hashes the executable (cached). Processes that are gone
before they are read are still reported, with ``partial: True``.

:class:`PollingExecMonitor` has the same interface and polls the sandbox cgroup's pids
instead, for hosts without the connector; it misses processes shorter than its interval.

:class:`StepTracker` answers "which agent step started this process tree": a pid inherits
its parent's step; the session shells' direct children take the step in force when they
were forked (by the kernel's timestamp, so a late event is still attributed right).

The connector socket is small rollcage-specific glue on :mod:`socket` + :mod:`struct`:
pyroute2's ``ProcEventSocket`` works too, but decodes every message through its generic
netlink marshal (and an asyncio core in 0.9), several times the per-event cost of one
``struct.unpack`` — and this code runs for every fork/exec/exit on the host.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rollcage.errors import HostError
from rollcage.monitor import proc_info
from rollcage.monitor.proc_info import ExeHasher

if TYPE_CHECKING:
    from rollcage.sandbox.cgroups import Cgroup

log = logging.getLogger(__name__)

ExecCallback = Callable[[dict[str, Any]], None]
LostCallback = Callable[[int], None]

# linux/connector.h, linux/cn_proc.h
NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RCVBUF_BYTES = 8 * 1024 * 1024
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_EVENT_HDR = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (after nlmsghdr + cn_msg = 36 bytes)
_EVENT_OFFSET = 16 + 20
_DATA_OFFSET = _EVENT_OFFSET + _EVENT_HDR.size
_FOUR = struct.Struct("=IIII")
_TWO = struct.Struct("=II")
SHARED_HASHER = ExeHasher()  # one cache per supervisor process: binaries are hashed once


class ExecMonitorUnavailable(HostError):
    """The kernel's process-events connector cannot be used here (not root, no
    CONFIG_PROC_EVENTS, netlink blocked); fall back to :class:`PollingExecMonitor`."""


# -- step attribution ------------------------------------------------------------------


class StepTracker:
    """Which step spawned each process tree of one sandbox.

    The sandbox sets :attr:`current_step` when a command starts and names its session
    shells with :meth:`add_shell`; a shell's direct child takes the step that was current
    when it was forked, and every other process inherits its parent's step — so a job
    backgrounded at step 2 still belongs to step 2 when it execs something at step 5.
    Thread-safe: the monitor thread feeds it, the sandbox reads it.
    """

    _HISTORY = 256

    def __init__(self, current_step: int | None = None, shells: tuple[int, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._steps: dict[int, int | None] = {}
        self._shells: set[int] = set(shells)
        self._times: list[int] = [0]
        self._values: list[int | None] = [current_step]

    @property
    def current_step(self) -> int | None:
        return self._values[-1]

    @current_step.setter
    def current_step(self, step: int | None) -> None:
        self.set_step(step)

    def set_step(self, step: int | None, ts_ns: int | None = None) -> None:
        """Make ``step`` current from ``ts_ns`` (CLOCK_MONOTONIC ns; default: now) on."""
        with self._lock:
            self._times.append(time.monotonic_ns() if ts_ns is None else ts_ns)
            self._values.append(step)
            if len(self._times) > self._HISTORY:
                del self._times[: -self._HISTORY], self._values[: -self._HISTORY]

    def step_at(self, ts_ns: int | None) -> int | None:
        """The step that was current at ``ts_ns`` (None: now)."""
        with self._lock:
            if ts_ns is None:
                return self._values[-1]
            index = bisect.bisect_right(self._times, ts_ns) - 1
            return self._values[max(index, 0)]

    def add_shell(self, pid: int) -> None:
        with self._lock:
            self._shells.add(pid)
            self._steps.pop(pid, None)

    def remove_shell(self, pid: int) -> None:
        with self._lock:
            self._shells.discard(pid)

    def tag(self, pid: int, step: int | None) -> None:
        """Say explicitly that ``pid`` (and, from now on, its descendants) belongs to ``step``."""
        with self._lock:
            self._steps[pid] = step

    def on_fork(self, parent: int, child: int, ts_ns: int | None = None) -> None:
        step = self._inherited(parent, ts_ns)
        if step is not _UNKNOWN:
            with self._lock:
                if child not in self._shells:  # a shell named before its fork event arrived stays a shell
                    self._steps[child] = step  # type: ignore[assignment]

    def on_exec(self, pid: int, ppid: int | None = None, ts_ns: int | None = None) -> int | None:
        """Record an exec (keeps a known step; else derives it from the parent) and return the step."""
        with self._lock:
            if pid in self._steps:
                return self._steps[pid]
            if pid in self._shells:
                return self._values[-1]
        step = self._inherited(ppid, ts_ns) if ppid is not None else _UNKNOWN
        if step is _UNKNOWN:
            step = self.step_at(ts_ns)
        with self._lock:
            self._steps[pid] = step  # type: ignore[assignment]
        return step  # type: ignore[return-value]

    def on_exit(self, pid: int) -> None:
        with self._lock:
            self._steps.pop(pid, None)
            self._shells.discard(pid)

    def step_of(self, pid: int) -> int | None:
        """The step that started ``pid``'s tree; the current step for shells and unknown pids."""
        with self._lock:
            if pid in self._steps:
                return self._steps[pid]
            return self._values[-1]

    def known(self, pid: int) -> bool:
        with self._lock:
            return pid in self._steps

    def _inherited(self, parent: int, ts_ns: int | None) -> int | object | None:
        with self._lock:
            if parent in self._shells:
                index = len(self._times) - 1 if ts_ns is None else bisect.bisect_right(self._times, ts_ns) - 1
                return self._values[max(index, 0)]
            if parent in self._steps:
                return self._steps[parent]
        return _UNKNOWN


_UNKNOWN = object()


# -- registrations and the shared event builder ----------------------------------------


@dataclass(eq=False)
class Registration:
    """One sandbox's subscription: processes in cgroup ``match`` go to ``callback``."""

    match: str
    callback: ExecCallback
    procs_file: Path | None = None
    tracker: StepTracker | None = None
    on_lost: LostCallback | None = None
    emitted: int = 0
    known: set[int] = field(default_factory=set)


def cgroup_match_for(cgroup: Cgroup) -> str:
    """The path a sandbox's processes show in /proc/<pid>/cgroup, e.g. ``/rollcage/sb-…``."""
    from rollcage.sandbox.paths import cgroup_parent

    return f"/{cgroup_parent()}/{cgroup.name}"


def _procs_file_for(match: str) -> Path | None:
    from rollcage.sandbox import cgroups

    if cgroups.is_v2():
        return cgroups.CGROUP_ROOT / match.strip("/") / "cgroup.procs"
    mount = cgroups._v1_mounts().get("pids")
    return mount / match.strip("/") / "cgroup.procs" if mount else None


def _registration(
    cgroup: Cgroup | str,
    callback: ExecCallback,
    tracker: StepTracker | None,
    on_lost: LostCallback | None,
) -> Registration:
    if isinstance(cgroup, str):
        match, procs_file = cgroup, _procs_file_for(cgroup)
    else:
        match, procs_file = cgroup_match_for(cgroup), cgroup.procs_dir / "cgroup.procs"
    if not match.startswith("/"):
        raise ValueError(f"cgroup match must be an absolute cgroup path like /rollcage/sb-1, not {match!r}")
    return Registration(match.rstrip("/") or "/", callback, procs_file, tracker, on_lost)


def _read_pids(procs_file: Path | None) -> list[int]:
    if procs_file is None:
        return []
    try:
        return [int(p) for p in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


def _read_image(pid: int, hasher: ExeHasher) -> tuple[str | None, list[str] | None, str | None, bool]:
    """(exe, argv, sha256, hashed) of one image: a process that execs again while being read
    (``nohup x`` becomes ``x``) is read again, so the hash always belongs to the exe named."""
    exe, argv, digest, hashed = None, None, None, False
    for _ in range(3):
        exe = proc_info.readlink(pid, "exe")
        argv = proc_info.argv(pid)
        digest, hashed = hasher.hash_pid(pid) if exe is not None else (None, False)
        if exe is None or proc_info.readlink(pid, "exe") == exe:
            break
    return exe, argv, digest, hashed


def read_exec_event(
    pid: int,
    ppid_hint: int | None,
    hasher: ExeHasher,
    *,
    ppid_known: bool = False,
    parents: dict[int, tuple[str | None, str | None]] | None = None,
) -> dict[str, Any]:
    """``exec`` event data for ``pid`` per docs/events.md, plus ``partial`` (True when the
    process vanished before everything could be read).

    ``ppid_known``: ``ppid_hint`` is the live parent (from fork events), so /proc/<pid>/stat
    need not be read; ``parents`` caches (pcmdline, pname) by parent pid — the caller
    drops an entry when that parent execs or exits.
    """
    exe, argv, digest, hashed = _read_image(pid, hasher)
    comm, ppid = None, ppid_hint
    if not ppid_known or ppid_hint is None or exe is None:
        st = proc_info.stat(pid)
        if st is not None:
            comm, ppid = st
    cwd = proc_info.readlink(pid, "cwd")
    uid = proc_info.uid(pid)
    partial = not hashed or argv is None or cwd is None or ppid is None
    parent = parents.get(ppid) if parents is not None and ppid else None
    if parent is None and ppid:
        pargv = proc_info.argv(ppid)
        parent = (" ".join(pargv) if pargv is not None else None, proc_info.comm(ppid))
        if parents is not None and parent[0] is not None:
            parents[ppid] = parent
    if exe is not None:
        name = os.path.basename(exe.removesuffix(" (deleted)"))
    else:
        name = comm or (os.path.basename(argv[0]) if argv else None)
    return {
        "pid": pid,
        "ppid": ppid,
        "exe": exe,
        "exe_sha256": digest,
        "argv": argv or [],
        "cmdline": " ".join(argv or []),
        "name": name,
        "cwd": cwd,
        "pcmdline": parent[0] if parent else None,
        "pname": parent[1] if parent else None,
        "uid": uid,
        "partial": partial,
    }


class ExecSensor(Protocol):
    """What the sandbox needs from either exec monitor."""

    def register(
        self,
        cgroup: Cgroup | str,
        callback: ExecCallback,
        *,
        tracker: StepTracker | None = None,
        on_lost: LostCallback | None = None,
    ) -> Registration: ...

    def unregister(self, registration: Registration) -> None: ...

    def flush(self, timeout: float = 1.0) -> bool: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _deliver(reg: Registration, data: dict[str, Any], counters: dict[str, int]) -> None:
    reg.emitted += 1
    counters["emitted"] += 1
    if data["partial"]:
        counters["partial"] += 1
    try:
        reg.callback(data)
    except Exception:
        counters["callback_errors"] += 1
        log.exception("exec callback for %s failed", reg.match)


# -- netlink connector -----------------------------------------------------------------


class ExecMonitor:
    """Process-events connector listener shared by every sandbox of this process.

    ``register(cgroup, callback, tracker=...)`` starts delivering ``exec`` event data for
    processes in that cgroup; the callback runs on the monitor thread, must be quick, and
    gets ``step`` in the data when a tracker is given (the step that started the tree).
    """

    _shared: ExecMonitor | None = None
    _shared_lock = threading.Lock()

    def __init__(self, rcvbuf: int = RCVBUF_BYTES) -> None:
        self._sock = _open_connector(rcvbuf)
        self.rcvbuf = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._regs: list[Registration] = []
        self._owner: dict[int, tuple[Registration, int | None]] = {}  # tgid -> (sandbox, ppid)
        self._parents: dict[int, tuple[str | None, str | None]] = {}  # tgid -> (cmdline, comm), tracked pids
        self._hasher = SHARED_HASHER
        self._drained_at = 0
        self._stop = False
        self._counters = dict.fromkeys(
            ("events", "forks", "execs", "exits", "emitted", "partial", "overruns", "cgroup_reads",
             "callback_errors"), 0,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="rollcage-exec-monitor", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> ExecMonitor:
        """The process-wide monitor, started on first use. Raises ExecMonitorUnavailable."""
        with cls._shared_lock:
            if cls._shared is None or cls._shared._stop:
                cls._shared = cls()
            return cls._shared

    # -- public ------------------------------------------------------------------------

    def register(
        self,
        cgroup: Cgroup | str,
        callback: ExecCallback,
        *,
        tracker: StepTracker | None = None,
        on_lost: LostCallback | None = None,
    ) -> Registration:
        """Deliver exec events of processes in ``cgroup`` (a Cgroup or its path as in
        /proc/<pid>/cgroup) to ``callback``; ``on_lost(n)`` hears of kernel queue overruns."""
        reg = _registration(cgroup, callback, tracker, on_lost)
        with self._lock:
            self._regs.append(reg)
            self._seed(reg)
        return reg

    def unregister(self, registration: Registration) -> None:
        with self._lock:
            if registration in self._regs:
                self._regs.remove(registration)
            for pid in [p for p, (r, _) in self._owner.items() if r is registration]:
                del self._owner[pid]

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until every event the kernel queued before this call has been handled
        (callbacks included). Returns False if that took longer than ``timeout``."""
        if threading.current_thread() is self._thread:
            return True
        target = time.monotonic_ns()
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)
        with self._cond:
            return self._cond.wait_for(lambda: self._drained_at >= target or self._stop, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters; ``overruns`` > 0 means the kernel dropped events (ENOBUFS)."""
        with self._lock:
            tracked, regs = len(self._owner), len(self._regs)
        cpu = None
        with contextlib.suppress(OSError, AttributeError, TypeError):
            ident = self._thread.ident
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident)) if ident else None
        return {
            "source": "netlink",
            **self._counters,
            "tracked_pids": tracked,
            "registrations": regs,
            "hash_cache": len(self._hasher),
            "rcvbuf_bytes": self.rcvbuf,
            "thread_cpu_s": cpu,
            "running": self._thread.is_alive(),
        }

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)
        self._thread.join(2)
        with contextlib.suppress(OSError):
            self._sock.send(_listen_message(PROC_CN_MCAST_IGNORE))
        self._sock.close()
        with contextlib.suppress(OSError):
            os.close(self._wake)
        with type(self)._shared_lock:
            if type(self)._shared is self:
                type(self)._shared = None

    # -- thread ------------------------------------------------------------------------

    def _seed(self, reg: Registration) -> None:
        """Map the sandbox's existing processes (lock held)."""
        for pid in _read_pids(reg.procs_file):
            st = proc_info.stat(pid)
            self._owner[pid] = (reg, st[1] if st else None)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        while not self._stop:
            try:
                for fd, _ in poller.poll():
                    if fd == self._wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._wake)
                self._drain()
            except Exception:  # never die silently: the sandbox relies on this thread
                log.exception("exec monitor loop error")
                time.sleep(0.01)
        with self._cond:
            self._cond.notify_all()

    def _drain(self) -> None:
        sock = self._sock
        while not self._stop:
            before = time.monotonic_ns()
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                with self._cond:
                    self._drained_at = before
                    self._cond.notify_all()
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self._overrun()
                    continue
                raise
            self._handle(data)

    def _overrun(self) -> None:
        self._counters["overruns"] += 1
        log.warning("exec monitor: kernel dropped process events (ENOBUFS); resyncing from cgroups")
        with self._lock:
            self._owner.clear()
            regs = list(self._regs)
            for reg in regs:
                self._seed(reg)
        for reg in regs:
            if reg.on_lost is not None:
                with contextlib.suppress(Exception):
                    reg.on_lost(self._counters["overruns"])

    def _handle(self, data: bytes) -> None:
        offset, size = 0, len(data)
        while offset + _DATA_OFFSET <= size:
            length = _NLMSG_HDR.unpack_from(data, offset)[0]
            what, _cpu, ts = _EVENT_HDR.unpack_from(data, offset + _EVENT_OFFSET)
            self._counters["events"] += 1
            at = offset + _DATA_OFFSET
            if what == PROC_EVENT_FORK:
                _ppid, parent, child_pid, child = _FOUR.unpack_from(data, at)
                if child_pid == child:  # a process, not a thread
                    self._on_fork(parent, child, ts)
            elif what == PROC_EVENT_EXEC:
                self._on_exec(_TWO.unpack_from(data, at)[1], ts)
            elif what == PROC_EVENT_EXIT:
                pid, tgid = _TWO.unpack_from(data, at)
                if pid == tgid:
                    self._on_exit(tgid)
            if length < 16:
                break
            offset += (length + 3) & ~3

    def _on_fork(self, parent: int, child: int, ts: int) -> None:
        self._counters["forks"] += 1
        entry = self._owner.get(parent)
        if entry is None:
            return
        reg = entry[0]
        with self._lock:
            if reg not in self._regs:
                return
            self._owner[child] = (reg, parent)
        if reg.tracker is not None:
            reg.tracker.on_fork(parent, child, ts)

    def _on_exec(self, pid: int, ts: int) -> None:
        self._counters["execs"] += 1
        entry = self._owner.get(pid)
        if entry is None:
            if not self._regs:
                return
            self._counters["cgroup_reads"] += 1
            paths = proc_info.cgroup_paths(pid)
            if not paths:
                return  # gone before we could tell whose it was, and not forked by a known pid
            with self._lock:
                reg = next((r for r in self._regs if proc_info.in_cgroup(paths, r.match)), None)
                if reg is None:
                    return
                entry = self._owner[pid] = (reg, None)
        reg, ppid = entry
        parents = self._parents
        parents.pop(pid, None)  # its cmdline changes now
        data = read_exec_event(pid, ppid, self._hasher, ppid_known=ppid in self._owner, parents=parents)
        if len(parents) > 4096:
            parents.clear()
        if reg.tracker is not None:
            data["step"] = reg.tracker.on_exec(pid, data["ppid"], ts)
        _deliver(reg, data, self._counters)

    def _on_exit(self, pid: int) -> None:
        self._counters["exits"] += 1
        entry = self._owner.get(pid)
        if entry is None:
            return
        with self._lock:
            self._owner.pop(pid, None)
        self._parents.pop(pid, None)
        if entry[0].tracker is not None:
            entry[0].tracker.on_exit(pid)


def _listen_message(op: int) -> bytes:
    payload = struct.pack("=I", op)
    cn = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0)
    return _NLMSG_HDR.pack(_NLMSG_HDR.size + len(cn) + len(payload), NLMSG_DONE, 0, 0, 0) + cn + payload


def _open_connector(rcvbuf: int) -> socket.socket:
    if os.geteuid() != 0:
        raise ExecMonitorUnavailable("the process-events connector needs root; use PollingExecMonitor")
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    except OSError as exc:
        raise ExecMonitorUnavailable(f"netlink connector socket unavailable: {exc}") from exc
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, CN_IDX_PROC))
        sock.send(_listen_message(PROC_CN_MCAST_LISTEN))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ExecMonitorUnavailable(f"cannot subscribe to process events (CONFIG_PROC_EVENTS?): {exc}") from exc
    return sock


# -- polling fallback ------------------------------------------------------------------


class PollingExecMonitor:
    """Fallback with :class:`ExecMonitor`'s interface: polls each registered cgroup's pids
    every ``interval`` seconds and reports new processes (and re-execs, by a changed exe).
    Processes that live shorter than the interval are not seen: this is a weaker sensor,
    and its ``stats()['source']`` says ``poll`` so callers can tell."""

    _shared: PollingExecMonitor | None = None
    _shared_lock = threading.Lock()

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._regs: list[Registration] = []
        self._exe: dict[tuple[int, int], str | None] = {}  # (id(reg), pid) -> exe
        self._hasher = SHARED_HASHER
        self._cycle = 0
        self._stop = threading.Event()
        self._counters = dict.fromkeys(("polls", "emitted", "partial", "callback_errors", "overruns"), 0)
        self._thread = threading.Thread(target=self._run, name="rollcage-exec-poller", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> PollingExecMonitor:
        with cls._shared_lock:
            if cls._shared is None or cls._shared._stop.is_set():
                cls._shared = cls()
            return cls._shared

    def register(
        self,
        cgroup: Cgroup | str,
        callback: ExecCallback,
        *,
        tracker: StepTracker | None = None,
        on_lost: LostCallback | None = None,
    ) -> Registration:
        reg = _registration(cgroup, callback, tracker, on_lost)
        reg.known = set(_read_pids(reg.procs_file))  # existing processes are not new execs
        with self._lock:
            for pid in reg.known:
                self._exe[(id(reg), pid)] = proc_info.readlink(pid, "exe")
            self._regs.append(reg)
        return reg

    def unregister(self, registration: Registration) -> None:
        with self._lock:
            if registration in self._regs:
                self._regs.remove(registration)

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait for one complete poll that started after this call."""
        if threading.current_thread() is self._thread:
            return True
        with self._cond:
            target = self._cycle + 2
            return self._cond.wait_for(lambda: self._cycle >= target or self._stop.is_set(), timeout)

    def stats(self) -> dict[str, Any]:
        cpu = None
        with contextlib.suppress(OSError, AttributeError, TypeError):
            ident = self._thread.ident
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident)) if ident else None
        with self._lock:
            regs = len(self._regs)
            tracked = sum(len(r.known) for r in self._regs)
        return {
            "source": "poll",
            **self._counters,
            "tracked_pids": tracked,
            "registrations": regs,
            "hash_cache": len(self._hasher),
            "interval_s": self.interval,
            "thread_cpu_s": cpu,
            "running": self._thread.is_alive(),
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with type(self)._shared_lock:
            if type(self)._shared is self:
                type(self)._shared = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("exec poller error")
            with self._cond:
                self._cycle += 1
                self._cond.notify_all()
            self._stop.wait(self.interval)
        with self._cond:
            self._cond.notify_all()

    def poll_once(self) -> None:
        self._counters["polls"] += 1
        with self._lock:
            regs = list(self._regs)
        for reg in regs:
            pids = _read_pids(reg.procs_file)
            alive = set(pids)
            for pid in reg.known - alive:
                reg.known.discard(pid)
                self._exe.pop((id(reg), pid), None)
                if reg.tracker is not None:
                    reg.tracker.on_exit(pid)
            for pid in sorted(pids):
                key = (id(reg), pid)
                if pid in reg.known:
                    exe = proc_info.readlink(pid, "exe")
                    if exe is None or exe == self._exe.get(key, exe):
                        continue  # same program as last time (or gone)
                data = read_exec_event(pid, None, self._hasher)
                if pid not in reg.known and reg.tracker is not None and data["ppid"] is not None:
                    reg.tracker.on_fork(data["ppid"], pid)
                reg.known.add(pid)
                self._exe[key] = data["exe"]
                if reg.tracker is not None:
                    data["step"] = reg.tracker.on_exec(pid, data["ppid"])
                _deliver(reg, data, self._counters)


def shared_exec_monitor() -> ExecMonitor | PollingExecMonitor:
    """The connector-based monitor where it works, else the polling fallback (logged)."""
    try:
        return ExecMonitor.shared()
    except ExecMonitorUnavailable as exc:
        log.warning("exec sensor falls back to polling cgroup.procs: %s", exc)
        return PollingExecMonitor.shared()
