"""The :class:`Sandbox`: one isolated, stateful environment for an agent.

A sandbox is a bubblewrap process tree (user, pid, mount, ipc, uts, cgroup and network
namespaces; no capabilities; no_new_privs; its own unprivileged host uid) inside its own
cgroup. Inside, a tiny POSIX-sh agent starts named bash sessions on request; the host
talks to each session over fifos. Files are read and written from the host through the
sandbox's root with the sandbox's own rights.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollcage.config import SandboxConfig
from rollcage.errors import HostError, SandboxClosedError, SessionError, WriteBlockedError
from rollcage.events import Attribution, Event, EventSink
from rollcage.events.defaults import default_sink
from rollcage.gateway.addressing import SandboxLink
from rollcage.sandbox import spawn
from rollcage.sandbox.cgroups import Cgroup, Limits
from rollcage.sandbox.fileops import SandboxFiles
from rollcage.sandbox.host import raise_fd_limit, require_root
from rollcage.sandbox.layout import bwrap_args
from rollcage.sandbox.paths import check_traversable, prepare_shared_dir, sandbox_runtime_dir, workspaces_dir
from rollcage.sandbox.procs import descendants_or_orphans, ns_pid, parent_pid, start_ticks
from rollcage.sandbox.result import CommandResult
from rollcage.sandbox.session import OutputCallback, Session, check_session_name
from rollcage.sandbox.uids import UID_BASE, lease_uid, release_uid

if TYPE_CHECKING:
    from rollcage.gateway.client import Gateway
    from rollcage.monitor.hub import SandboxMonitor

DEFAULT_SESSION = "default"
BLOCKED_EXIT_CODE = 126  # "command found but not executable", as shells report a refused command
_UNTAGGED = object()
_START_TIMEOUT_S = 10.0
_open_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()


class Sandbox:
    """An isolated sandbox. Use as a context manager, or call :meth:`close`.

    ``run_id``/``episode_id``/``step`` attribute every event this sandbox emits; ``step``
    can be changed per command (``run(..., step=3)``) or with :meth:`set_step`.
    """

    def __new__(
        cls, config: SandboxConfig | None = None, *, server: str | None = None, token: str | None = None, **kwargs: Any
    ) -> Any:
        """``Sandbox(config, server=URL, token=T)`` is the same API on an admin server."""
        if server is not None:
            from rollcage.client import RemoteSandbox

            return RemoteSandbox(config, server=server, token=token, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        run_id: str | None = None,
        episode_id: str | None = None,
        events: EventSink | None = None,
        gateway: Gateway | None = None,
        server: None = None,
        token: None = None,
    ) -> None:
        require_root()
        raise_fd_limit()
        self.config = config or SandboxConfig()
        self.id = "sb-" + secrets.token_hex(6)
        self.attribution = Attribution(run_id=run_id, episode_id=episode_id)
        self._events: EventSink = events if events is not None else default_sink()
        self.monitor: SandboxMonitor | None = None
        self._frozen: str | None = None
        self._trust = threading.local()
        if self.config.mode != "off":
            from rollcage.monitor.hub import SandboxMonitor

            self.monitor = SandboxMonitor(self, self._events)
            self._events = self.monitor  # every event passes the rules on its way to the sink
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._closed = False
        self._stopped = False
        self._closing = threading.Lock()
        self._proc: Any = None
        self._agent_in: Any = None
        self._agent_out: Any = None
        self.uid = -1
        self.init_pid = -1
        self.agent_pid = -1
        self.runtime_dir = sandbox_runtime_dir(self.id)
        self.workspace = workspaces_dir() / self.id
        self.cgroup = Cgroup(self.id)
        self.files: SandboxFiles | None = None
        self.network: SandboxLink | None = None
        self._gateway = gateway
        self._pid_steps: dict[int, int | None] = {}  # host pid -> step whose command started it
        self._flow_steps: dict[tuple[Any, Any, Any], int | None] = {}  # open flows keep their first step
        self._starting = True
        try:
            self._start()
        except BaseException:
            self._teardown()
            raise
        finally:
            self._starting = False
        _open_sandboxes.add(self)
        self._emit(
            "sandbox",
            {
                "action": "created",
                "config": self.config.model_dump(mode="json"),
                "uid": self.uid,
                "init_pid": self.init_pid,
            },
        )

    # -- lifecycle -------------------------------------------------------------------

    def _start(self) -> None:
        if self.config.rootfs is not None:
            check_traversable(self.config.rootfs / "bin")
        self.uid = lease_uid(self.id)
        for directory in (self.runtime_dir.parent, self.workspace.parent):
            prepare_shared_dir(directory)  # the sandbox uid must traverse to its own entry
        self.runtime_dir.mkdir(mode=0o711)
        control = self.runtime_dir / "ctl"
        control.mkdir(mode=0o700)
        os.chown(control, self.uid, self.uid)
        self.workspace.mkdir(mode=0o755)
        os.chown(self.workspace, self.uid, self.uid)
        (self.runtime_dir / "meta.json").write_text(json.dumps({
            "sandbox_id": self.id, "supervisor_pid": os.getpid(),
            "supervisor_start": start_ticks(os.getpid()), "uid": self.uid,
            "workspace": str(self.workspace), "created": time.time(),
        }))  # fmt: skip
        self.cgroup.create(Limits(memory=self.config.memory, pids=self.config.pids, cpus=self.config.cpus))
        resolv_conf = None
        if self.config.network is not None:
            resolv_conf = self.runtime_dir / "resolv.conf"
            link = SandboxLink.for_slot(self.uid - UID_BASE)
            resolv_conf.write_text(f"nameserver {link.gateway_ip}\noptions timeout:2 attempts:2\n")
            resolv_conf.chmod(0o644)
        info_read, info_write = os.pipe()
        join_fds = self.cgroup.join_fds()
        uid = self.uid

        def enter_cgroup_and_drop_privileges() -> None:  # runs in the child, before exec
            for fd in join_fds:
                os.write(fd, b"0")
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

        try:
            args = bwrap_args(self.config, control, self.workspace, info_write, resolv_conf)
            self._proc = spawn.popen(
                args,
                stdin=-1, stdout=-1, stderr=-1,
                pass_fds=(info_write,),
                preexec_fn=enter_cgroup_and_drop_privileges,
                cwd="/",
                env={},
            )  # fmt: skip
        finally:
            os.close(info_write)
            for fd in join_fds:
                os.close(fd)
        self._agent_in, self._agent_out = self._proc.stdin, self._proc.stdout
        with os.fdopen(info_read, "rb") as info:
            data = info.read()  # EOF once bwrap has set up the sandbox (or failed)
        if not data:
            self._proc.wait(_START_TIMEOUT_S)
            err = self._proc.stderr.read().decode(errors="replace").strip()
            raise HostError(f"sandbox failed to start: {err or 'bubblewrap exited'}")
        self.init_pid = int(json.loads(data)["child-pid"])
        self.agent_pid = self._agent_host_pid()
        # The agent's root, not init's: bwrap's init stays outside the final mount tree.
        try:
            self.files = SandboxFiles(self.agent_pid, self.uid)
        except (FileNotFoundError, ProcessLookupError):  # the agent exited already (a broken rootfs, say)
            raise HostError(f"sandbox {self.id} died while starting: {self._stderr_tail()}") from None
        if self.config.network is not None:
            self._attach_network()
        if self.monitor is not None:
            self.monitor.start()
        self._session(DEFAULT_SESSION)

    def _attach_network(self) -> None:
        """Link the sandbox to the egress gateway; its events come back attributed to us."""
        from rollcage.gateway.client import shared_gateway

        if self._gateway is None:
            self._gateway = shared_gateway()
        assert self.config.network is not None
        self.network = self._gateway.attach(
            self.id, self.uid - UID_BASE, self.init_pid, self.cgroup.procs_dir / "cgroup.procs",
            self.config.network, self._on_network_event, self._on_gateway_lost,
        )  # fmt: skip

    def close(self) -> None:
        """Stop every process of the sandbox and remove all it left on the host."""
        with self._closing:  # a second caller (e.g. atexit) waits for the first
            if self._stopped:
                return
            self._closed = True
            self._teardown()
            self._stopped = True
        _open_sandboxes.discard(self)
        self._emit("sandbox", {"action": "stopped"})

    def _teardown(self) -> None:
        self._closed = True
        if self.monitor is not None:
            self.monitor.close()
        if self._gateway is not None and self.uid >= 0 and self.config.network is not None:
            self._gateway.detach(self.id, self.uid - UID_BASE)
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        if self.files is not None:
            self.files.close()
        if self.init_pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)  # kills the whole pid namespace
        self.cgroup.kill_all()
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
            try:
                self._proc.wait(2)
            except Exception:
                self._proc.kill()
        self.cgroup.remove()
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if self.uid >= 0:
            release_uid(self.uid)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"<Sandbox {self.id} {state}>"

    # -- commands --------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        session: str = DEFAULT_SESSION,
        step: int | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a shell command in a persistent session (state such as cwd and exported
        variables carries over between calls in the same session)."""
        if not isinstance(command, str):
            raise TypeError("command must be a string")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        check_session_name(session)
        with self._lock:
            self._check_open()
            if step is not None:
                self.attribution.step = step
            attribution = self.attribution.copy()
            shell = self._session(session)
        with shell.lock:  # one command at a time per session; sessions run in parallel
            self._check_open()
            shell.step = attribution.step
            refused = self._refuse(command, attribution)
            if refused is not None:
                return refused
            if self.monitor is not None and self._is_trusted():
                self.monitor.trust_shell(shell.shell_pid)
            result = shell.run(
                command,
                timeout=timeout or self.config.timeout,
                limit=self.config.output_limit,
                killer=self._kill_command_tree,
                before=set(self.cgroup.pids()),
                on_output=on_output,
            )
            if self.monitor is None:  # with a monitor, the exec sensor's fork events attribute exactly
                self._tag_new_processes(attribution.step)
            if not shell.alive:
                with self._lock:
                    shell.close()
                    if self._sessions.get(session) is shell:
                        del self._sessions[session]
                result = replace(result, session_restarted=True)
        self._emit("command_finished", {
            "command": command, "session": session, "exit_code": result.exit_code,
            "duration_s": round(result.duration_s, 6), "timed_out": result.timed_out,
            "truncated": result.truncated, "output_bytes": result.output_bytes,
        }, attribution)  # fmt: skip
        return result

    @contextlib.contextmanager
    def trusted(self) -> Iterator[None]:
        """Commands and file writes of the calling thread inside this block are the host's own
        (task setup, the verifier), not the agent's: the monitor does not judge them before
        they run. Their processes are still watched by the exec sensor and the gateway."""
        depth = getattr(self._trust, "depth", 0)
        self._trust.depth = depth + 1
        try:
            yield
        finally:
            self._trust.depth = depth

    def _is_trusted(self) -> bool:
        return getattr(self._trust, "depth", 0) > 0

    def _refuse(self, command: str, attribution: Attribution) -> CommandResult | None:
        """The monitor's say before a command runs: a blocked command never starts."""
        message = None
        if self._frozen is not None:
            message = f"rollcage: sandbox is frozen ({self._frozen}); no command can run\n"
        elif self.monitor is not None and not self._is_trusted():
            self.monitor.set_step(attribution.step)
            verdict = self.monitor.before_command(command, attribution)
            if verdict.blocked:
                message = verdict.message
        if message is None:
            return None
        finished = {"command": command, "exit_code": BLOCKED_EXIT_CODE, "blocked": True, "duration_s": 0.0,
                    "timed_out": False, "truncated": False}  # fmt: skip
        self._emit("command_finished", finished, attribution)
        return CommandResult(BLOCKED_EXIT_CODE, message, False, 0.0, False, len(message), blocked=True)

    def freeze(self, reason: str) -> None:
        """Stop every process where it stands (cgroup freezer); commands are refused from now on."""
        self.cgroup.freeze(True)
        self._frozen = reason
        self._emit("sandbox", {"action": "frozen", "reason": reason})

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Alerts raised in this sandbox so far (empty when the monitor is off)."""
        return list(self.monitor.alerts) if self.monitor is not None else []

    @property
    def episode_end(self) -> dict[str, Any] | None:
        """Set when an ``end_episode`` rule fired in enforce mode: the rule that ended it."""
        return self.monitor.episode_end if self.monitor is not None else None

    def set_step(self, step: int | None) -> None:
        self.attribution.step = step
        if self.monitor is not None:
            self.monitor.set_step(step)

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file inside the sandbox (parents are created), as the sandbox user."""
        data = content.encode() if isinstance(content, str) else bytes(content)
        self._check_open()
        assert self.files is not None
        if self.monitor is not None and not self._is_trusted():
            verdict = self.monitor.before_write(path, data, self.attribution.copy())
            if verdict.blocked:
                raise WriteBlockedError(verdict.message)
        self.files.write(path, data, mode)

    def read_bytes(self, path: str, max_bytes: int = 64 * 1024**2) -> bytes:
        self._check_open()
        assert self.files is not None
        return self.files.read(path, max_bytes)

    def read_file(self, path: str, max_bytes: int = 64 * 1024**2) -> str:
        """Read a text file inside the sandbox (undecodable bytes become U+FFFD)."""
        return self.read_bytes(path, max_bytes).decode("utf-8", "replace")

    def pids(self) -> list[int]:
        """Host pids of every process in the sandbox."""
        return self.cgroup.pids()

    # -- internals -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxClosedError(f"sandbox {self.id} is closed")

    def _session(self, name: str) -> Session:
        session = self._sessions.get(name)
        if session is not None:
            return session
        control = self.runtime_dir / "ctl"
        fds: list[int] = []
        try:
            for suffix in ("in", "out"):
                path = control / f"{name}.{suffix}"
                if path.exists():
                    path.unlink()
                os.mkfifo(path, 0o600)
                os.chown(path, self.uid, self.uid)
                fds.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            try:
                self._agent_in.write(f"spawn {name}\n".encode())
                self._agent_in.flush()
            except (BrokenPipeError, ValueError):  # the agent is gone: it never started, or was killed inside
                if self._starting:
                    raise HostError(f"sandbox {self.id} died while starting: {self._stderr_tail()}") from None
                message = f"sandbox {self.id} has no agent left to start session {name!r} (killed from inside?)"
                raise SessionError(message + "; close it and start a new one") from None
            reply = self._agent_out.readline().decode().split()
            if not reply:
                raise HostError(f"sandbox {self.id} died while starting: {self._stderr_tail()}")
            if len(reply) != 3 or reply[:2] != ["spawned", name]:
                raise SessionError(f"sandbox agent refused to start session {name!r}: {reply}")
            shell_pid = self._host_pid(int(reply[2]))
            session = Session(name, fds[0], fds[1], shell_pid)
            if self.monitor is not None:
                self.monitor.add_shell(shell_pid)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        self._sessions[name] = session
        return session

    def _agent_host_pid(self) -> int:
        children = Path(f"/proc/{self.init_pid}/task/{self.init_pid}/children")
        for _ in range(1000):
            try:
                pids = children.read_text().split()
            except FileNotFoundError:
                break
            if pids:
                return int(pids[0])
            time.sleep(0.001)
        raise HostError(f"sandbox {self.id} died while starting: {self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._proc is None or self._proc.poll() is None:
            return "no diagnostics"
        return self._proc.stderr.read(4096).decode(errors="replace").strip() or "bubblewrap exited"

    def _host_pid(self, inner_pid: int) -> int:
        for _ in range(100):
            for pid in self.cgroup.pids():
                if ns_pid(pid) == inner_pid:
                    return pid
            time.sleep(0.001)
        raise SessionError(f"session process {inner_pid} not found in sandbox {self.id}")

    def _kill_command_tree(self, before: set[int], shell_pid: int) -> None:
        """SIGKILL the processes a timed-out command started, and only those."""
        for _ in range(10):
            new = [p for p in self.cgroup.pids() if p not in before and p != shell_pid]
            victims = descendants_or_orphans(new, shell_pid, self.init_pid)
            if not victims:
                return
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    # -- attribution of process-caused events ----------------------------------------

    def _tag_new_processes(self, step: int | None) -> None:
        """Remember which step started each process still alive after a command.

        A process inherits the step of its closest tagged ancestor, so a worker that a
        step-2 background job forks during step 5 still belongs to step 2.
        """
        with self._lock:
            alive = set(self.cgroup.pids())
            self._pid_steps = {p: s for p, s in self._pid_steps.items() if p in alive}
            shells = {s.shell_pid for s in self._sessions.values()}
            plumbing = {self.init_pid, self.agent_pid, self._proc.pid if self._proc is not None else -1}
            for pid in sorted(alive - self._pid_steps.keys() - shells - plumbing):
                inherited = self._tagged_ancestor(pid, shells)
                self._pid_steps[pid] = step if inherited is _UNTAGGED else inherited

    def _tagged_ancestor(self, pid: int, shells: set[int]) -> int | object | None:
        current = pid
        for _ in range(64):
            parent = parent_pid(current)
            if parent is None or parent <= 1 or parent in shells or parent == self.init_pid:
                return _UNTAGGED
            if parent in self._pid_steps:
                return self._pid_steps[parent]
            current = parent
        return _UNTAGGED

    def step_of_process(self, pid: int | None, ancestors: list[int] | None = None) -> int | None:
        """The step whose command started ``pid``'s process tree (``ancestors``: parent first)."""
        if pid is None:
            return self.attribution.step
        if self.monitor is not None:
            seen = self.monitor.step_of(pid)  # the exec sensor saw the fork: exact
            if seen is not False:
                return seen  # type: ignore[return-value]
        with self._lock:
            sessions = {s.shell_pid: s for s in self._sessions.values()}
            for candidate in [pid, *(ancestors or [])]:
                if candidate in self._pid_steps:
                    return self._pid_steps[candidate]
                if candidate in sessions:
                    return sessions[candidate].step
        return self.attribution.step

    def _on_network_event(self, type_: str, data: dict[str, Any]) -> None:
        """A flow/dns/net_drop event from the gateway: attribute it to the step that owns the socket."""
        key = (data.get("src_port"), data.get("dst_ip"), data.get("dst_port")) if type_ == "flow" else None
        step = self._flow_steps.get(key) if key else None
        if step is None:
            step = self.step_of_process(data.get("pid"), data.get("ancestors"))
        if key and data.get("phase") == "open":
            self._flow_steps[key] = step
        elif key:
            self._flow_steps.pop(key, None)
        self._emit(type_, data, self.attribution.copy(step=step))

    def _on_gateway_lost(self, reason: str) -> None:
        """Fail closed: without its gateway a networked sandbox is stopped, never left running."""
        if self._closed:
            return
        self._emit("sandbox", {"action": "network_lost", "reason": reason})
        self.close()

    def _emit(self, type_: str, data: dict[str, Any], attribution: Attribution | None = None) -> None:
        self._events.emit(Event(type_, self.id, attribution or self.attribution.copy(), data))


@atexit.register
def _close_all() -> None:
    for sandbox in list(_open_sandboxes):
        with contextlib.suppress(Exception):
            sandbox.close()
    gateway_client = sys.modules.get("rollcage.gateway.client")
    if gateway_client is not None:
        gateway_client.close_shared_gateway()
