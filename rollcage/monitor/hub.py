"""The runtime monitor of one sandbox: sensors in, rules over every event, responses out.

Every event the sandbox emits (its own, the gateway's, the exec, resource and GPU
sensors') passes through :meth:`SandboxMonitor.emit`: it is stored, evaluated by the rule
engine, and each alert is acted on (in ``enforce`` mode) and stored with what was done.
Before a command runs, :meth:`before_command` analyses it statically (scripts it runs
and config files it hands over included) so that a rule can block it before it starts.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollcage.events import Attribution, Event, EventSink
from rollcage.monitor.exec_sensor import ExecSensor, Registration, StepTracker, shared_exec_monitor
from rollcage.monitor.gpu import GpuSampler, GpuSource, detect_gpu_source
from rollcage.monitor.resources import ResourceMonitor, ResourceSampler
from rollcage.monitor.static import analyze_command, analyze_file
from rollcage.rules import Alert, RuleEngine, RuleSet
from rollcage.sandbox.procs import parent_pid

if TYPE_CHECKING:
    from rollcage.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

BLOCKING_ACTIONS = frozenset({"block", "kill", "freeze", "stop", "end_episode"})
_SCRIPT_LIMIT = 64 * 1024  # bytes of a referenced script or config read for analysis
_SYSTEM_DIRS = ("/bin/", "/sbin/", "/usr/", "/lib/", "/lib64/", "/proc/", "/sys/", "/dev/")
_RESOURCE_STORE_EVERY = 10  # keep one resource sample in ten in the store; rules see them all


@dataclass(frozen=True)
class Verdict:
    """What the monitor says about a command before it runs."""

    blocked: bool
    alerts: list[dict[str, Any]]
    message: str = ""


_rulesets: dict[tuple[Path, ...], RuleSet] = {}
_rulesets_lock = threading.Lock()
_resources: ResourceMonitor | None = None
_gpu_source: GpuSource | None = None
_gpu_sampler: GpuSampler | None = None
_shared_lock = threading.Lock()


def ruleset_for(extra: tuple[Path, ...] = ()) -> RuleSet:
    """The shipped rules plus ``extra`` files, parsed once per process."""
    with _rulesets_lock:
        ruleset = _rulesets.get(extra)
        if ruleset is None:
            ruleset = _rulesets[extra] = RuleSet.load(list(extra))
        return ruleset


_engines: dict[tuple[tuple[Path, ...], str], tuple[RuleEngine, threading.Lock]] = {}


def engine_for(extra: tuple[Path, ...], mode: str) -> tuple[RuleEngine, threading.Lock]:
    """One engine (and the lock that serialises it) per rule set and mode, shared by sandboxes:
    building the rule index costs tens of milliseconds, and stateful rules key on the sandbox."""
    ruleset = ruleset_for(extra)
    with _rulesets_lock:
        found = _engines.get((extra, mode))
        if found is None:
            found = _engines[(extra, mode)] = (RuleEngine(ruleset, mode=mode), threading.Lock())
        return found


def use_gpu_source(source: GpuSource | None) -> None:
    """Choose the GPU source for sandboxes created from now on (tests and the demo pass a
    simulated one; by default NVML is used where a driver answers)."""
    global _gpu_source, _gpu_sampler
    with _shared_lock:
        _gpu_source = source
        _gpu_sampler = GpuSampler(source)
        if _resources is not None:
            _resources.gpu = _gpu_sampler


def _shared_resources() -> tuple[ResourceMonitor, GpuSampler]:
    global _resources, _gpu_sampler
    with _shared_lock:
        if _gpu_sampler is None:
            _gpu_sampler = GpuSampler(_gpu_source if _gpu_source is not None else detect_gpu_source())
        if _resources is None:
            _resources = ResourceMonitor(interval=1.0, gpu=_gpu_sampler)
        return _resources, _gpu_sampler


_FILE_ARG = re.compile(
    r"^(?:[\w.-]*/)*[\w.-]+\.(?:sh|bash|py|pl|rb|js|json|conf|cfg|ini|toml|ya?ml|txt|service|timer)$|^/[^\s]+$"
)


def _file_candidates(analysis: Any) -> list[str]:
    """Paths a command names: the analyzer's, plus arguments that look like scripts or configs."""
    found = list(analysis.paths)
    for command in analysis.commands:
        for arg in command.argv[1:]:
            value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
            if value not in found and _FILE_ARG.match(value):
                found.append(value)
    return found


class SandboxMonitor:
    """Sensors, rule engine and responses for one sandbox; it is the sandbox's event sink."""

    def __init__(self, sandbox: Sandbox, sink: EventSink) -> None:
        self.sandbox = sandbox
        self.sink = sink
        self.mode = sandbox.config.mode
        self.engine, self._lock = engine_for(sandbox.config.rules, "monitor" if self.mode == "off" else self.mode)
        self.tracker = StepTracker()
        self.alerts: list[dict[str, Any]] = []
        self.episode_end: dict[str, Any] | None = None
        self._exec: ExecSensor | None = None
        self._exec_reg: Registration | None = None
        self._gpu_reg: Any = None
        self._resource_key = f"{sandbox.id}"
        self._resource_samples = 0
        self._closed = False
        self._trusted_shells: set[int] = set()
        self.on_alert: list[Callable[[dict[str, Any]], None]] = []

    # -- sensors -----------------------------------------------------------------------

    def start(self) -> None:
        """Attach the exec, resource and GPU sensors to the (already running) sandbox."""
        sb = self.sandbox
        self._exec = shared_exec_monitor()
        self._exec_reg = self._exec.register(sb.cgroup, self._on_exec, tracker=self.tracker, on_lost=self._on_lost)
        resources, gpu = _shared_resources()
        resources.add(self._resource_key, ResourceSampler(sb.cgroup), self._on_resource)
        if gpu.active:
            self._gpu_reg = gpu.register(sb.cgroup, self._on_gpu)

    def add_shell(self, pid: int) -> None:
        self.tracker.add_shell(pid)

    def set_step(self, step: int | None) -> None:
        self.tracker.set_step(step)

    def step_of(self, pid: int) -> int | bool | None:
        """The step that started ``pid``'s tree, or False when the exec sensor never saw it."""
        if self.tracker.known(pid):
            return self.tracker.step_of(pid)
        return False

    def trust_shell(self, pid: int) -> None:
        """Processes under this session shell run the host's own commands (setup, verifier)."""
        self._trusted_shells.add(pid)

    def _from_trusted_shell(self, data: dict[str, Any]) -> bool:
        if not self._trusted_shells:
            return False
        current = data.get("ppid")
        for _ in range(32):
            if current is None or current <= 1 or current == self.sandbox.init_pid:
                return False  # reached the sandbox's own init: not under a trusted shell
            if current in self._trusted_shells:
                return True
            current = parent_pid(current)
        return False

    def _on_exec(self, data: dict[str, Any]) -> None:
        step = data.pop("step", self.sandbox.attribution.step)
        event = Event("exec", self.sandbox.id, self.sandbox.attribution.copy(step=step), data)
        if self._from_trusted_shell(data):
            data["trusted"] = True  # recorded, but the host's own verifier is never judged or killed
            self.sink.emit(event)
            return
        self.emit(event)

    def _on_lost(self, count: int) -> None:
        self.emit(Event("sensor", self.sandbox.id, self.sandbox.attribution.copy(),
                        {"sensor": "exec", "problem": "events lost", "count": count}))  # fmt: skip

    def _on_resource(self, data: dict[str, Any] | None) -> None:
        if data is None:
            return
        self._resource_samples += 1
        event = Event("resource", self.sandbox.id, self.sandbox.attribution.copy(), data)
        self.emit(event, store=self._resource_samples % _RESOURCE_STORE_EVERY == 1)

    def _on_gpu(self, data: dict[str, Any]) -> None:
        config = self.sandbox.config
        cmdline = data.get("cmdline") or ""
        data["expected"] = any(fnmatch.fnmatch(cmdline, pattern) for pattern in config.gpu_commands)
        data["budget_bytes"] = config.gpu_memory_budget
        data["over_budget"] = (
            config.gpu_memory_budget is not None and data.get("memory_bytes", 0) > config.gpu_memory_budget
        )
        step = self.step_of(int(data["pid"])) if data.get("pid") else False
        attribution = self.sandbox.attribution.copy(step=self.sandbox.attribution.step if step is False else step)
        self.emit(Event("gpu", self.sandbox.id, attribution, data))

    # -- static analysis ---------------------------------------------------------------

    def before_command(self, command: str, attribution: Attribution) -> Verdict:
        """Analyse ``command`` (and the scripts and configs it names) before it runs."""
        analysis = analyze_command(command)
        files: dict[str, str] = {}
        for _ in range(3):  # a script names a config, which names ...: follow a few levels
            new = self._referenced_files([p for p in _file_candidates(analysis) if p not in files])
            if not new:
                break
            files.update(new)
            analysis = analyze_command(command, files=files)
        data = analysis.to_event_data()
        alerts = self.emit(Event("command", self.sandbox.id, attribution, data))
        for path, content in files.items():  # configs and scripts the command hands over, judged as files
            file_data = analyze_file(content, path).to_event_data()
            if file_data.get("findings"):
                alerts += self.emit(Event("file", self.sandbox.id, attribution, {**file_data, "used_by": command}))
        blocking = [a for a in alerts if a.get("action") in BLOCKING_ACTIONS]
        if self.mode != "enforce" or not blocking:
            return Verdict(False, alerts)
        first = blocking[0]
        message = (f"rollcage: command blocked by rule {first['rule']!r} ({first['category']}, "
                   f"{first['severity']}): {first['output']}\n")  # fmt: skip
        return Verdict(True, alerts, message)

    def before_write(self, path: str, data: bytes, attribution: Attribution) -> Verdict:
        """Scan a script or config file the agent is about to write through the SDK; in enforce
        mode a blocking rule refuses the write (a miner's config never lands)."""
        if len(data) > _SCRIPT_LIMIT:
            return Verdict(False, [])
        analysis = analyze_file(data.decode("utf-8", "replace"), path)
        event_data = analysis.to_event_data()
        if not (event_data.get("findings") or event_data.get("commands") or event_data.get("features")):
            return Verdict(False, [])
        alerts = self.emit(Event("file", self.sandbox.id, attribution, event_data))
        blocking = [a for a in alerts if a.get("action") in BLOCKING_ACTIONS]
        if self.mode != "enforce" or not blocking:
            return Verdict(False, alerts)
        first = blocking[0]
        return Verdict(True, alerts, f"rollcage: writing {path} blocked by rule {first['rule']!r} "
                                     f"({first['category']}, {first['severity']})")  # fmt: skip

    def _referenced_files(self, paths: list[str]) -> dict[str, str]:
        files = {}
        sb = self.sandbox
        for path in paths[:16]:
            if path.startswith(_SYSTEM_DIRS):
                continue  # the host's read-only programs and libraries, not something the agent wrote
            full = path if path.startswith("/") else f"{sb.config.workdir}/{path}"
            with contextlib.suppress(Exception):
                data = sb.read_bytes(full, max_bytes=_SCRIPT_LIMIT)
                if b"\0" not in data[:8192]:  # binaries are the exec sensor's business
                    files[path] = data.decode("utf-8", "replace")
        return files

    # -- the sink ----------------------------------------------------------------------

    def emit(self, event: Event, *, store: bool = True) -> list[dict[str, Any]]:
        """Store ``event``, run the rules over it, act on and store each alert; return the alerts."""
        if store:
            self.sink.emit(event)
        if self.mode == "off" or event.type == "alert":
            return []
        record = event.to_dict()
        with self._lock:
            try:
                alerts = self.engine.evaluate(record)
            except Exception:
                log.exception("rule evaluation failed for a %s event", event.type)
                return []
        out = []
        for alert in alerts:
            out.append(self._raise(alert, record, stored=store))
        return out

    def _raise(self, alert: Alert, record: dict[str, Any], *, stored: bool) -> dict[str, Any]:
        response = self.respond(alert) if self.mode == "enforce" else {"taken": "none", "mode": "monitor"}
        alert_event = alert.to_event()
        data = {**alert_event.data, "response": response}
        if not stored:  # a sampled-out resource event: keep it as evidence inside the alert
            data["evidence"] = [record]
        event = Event("alert", alert_event.sandbox_id, alert_event.attribution, data, time=alert_event.time)
        self.sink.emit(event)
        alert_dict = event.to_dict()
        self.alerts.append(alert_dict)
        for listener in list(self.on_alert):
            with contextlib.suppress(Exception):
                listener(alert_dict)
        return alert_dict

    # -- responses ---------------------------------------------------------------------

    def respond(self, alert: Alert) -> dict[str, Any]:
        """Carry out the rule's action; say what was done."""
        action = alert.action
        if action == "alert":
            return {"taken": "none"}
        before_run = bool(alert.evidence) and alert.evidence[0].get("type") in ("command", "file")
        if action in ("block", "kill"):
            if before_run:
                return {"taken": "block"}  # the caller refuses to run the command: nothing to kill yet
            action = "kill"  # a process already running cannot be blocked, only stopped
        if action == "kill":
            if alert.pid is None:
                return {"taken": "none", "reason": "no process to kill"}
            return {"taken": "kill", "pids": self.kill_tree(alert.pid)}
        if action == "freeze":
            try:
                self.sandbox.freeze(f"rule {alert.rule!r}")
            except Exception as exc:
                return {"taken": "none", "error": str(exc)}
            return {"taken": "freeze"}
        if action == "stop":
            threading.Thread(target=self.sandbox.close, name="rollcage-stop", daemon=True).start()
            return {"taken": "stop"}
        if action == "end_episode":
            if self.episode_end is None:
                self.episode_end = {"rule": alert.rule, "category": alert.category, "severity": alert.severity}
            return {"taken": "end_episode"}
        return {"taken": "none", "reason": f"unknown action {action!r}"}

    def kill_tree(self, pid: int) -> list[int]:
        """SIGKILL ``pid`` and its descendants inside this sandbox (never its init or agent)."""
        sb = self.sandbox
        protected = {sb.init_pid, sb.agent_pid}
        members = set(sb.cgroup.pids())
        if pid not in members or pid in protected:
            return []
        victims = {pid}
        changed = True
        while changed:
            changed = False
            for candidate in members - victims - protected:
                if parent_pid(candidate) in victims:
                    victims.add(candidate)
                    changed = True
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        return sorted(victims)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._exec is not None and self._exec_reg is not None:
            self._exec.unregister(self._exec_reg)
        resources, gpu = _shared_resources()
        resources.remove(self._resource_key)
        if self._gpu_reg is not None:
            gpu.unregister(self._gpu_reg)
        with self._lock:
            self.engine.reset(self.sandbox.id)
