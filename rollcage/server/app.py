"""The FastAPI application: routes, authentication, error shapes, the live alert stream.

Every route but ``/health`` and the dashboard's static files (which hold no data; the page asks
for the token and sends it with each API call) needs ``Authorization: Bearer <token>``.
Errors are always ``{"detail": "...", "error": "<kind>"}`` with a 4xx status that says whose
fault it was; hostile commands are just commands, run in the sandbox like any other.
"""

import asyncio
import contextlib
import errno
import json
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from rollcage import __version__
from rollcage.config import build_config
from rollcage.errors import (
    ConfigError,
    HostError,
    RollcageError,
    SandboxClosedError,
    SandboxFileError,
    SessionError,
)
from rollcage.server import models as m
from rollcage.server.auth import token_matches
from rollcage.server.metrics import CONTENT_TYPE, Metrics
from rollcage.server.runs import DirRunSource, RunSource, safe_id
from rollcage.server.sandboxes import SandboxManager, SandboxNotFound, TooManySandboxes
from rollcage.server.store import AlertFilter, EventReader, episode_spans

STATIC_DIR = Path(__file__).parent / "static"
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": m.ErrorBody, "description": "bad request", "content": _ERROR_CONTENT}
}
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


@dataclass
class ServerSettings:
    """What one server serves; ``rollcage serve`` fills it from its options."""

    token: str
    event_db: Path | None = None  # default: the state directory's events.db
    runs_dir: Path | None = None  # default: <state dir>/runs
    rule_files: list[Path] = field(default_factory=list)
    max_sandboxes: int = 64
    max_upload_bytes: int = 64 * 1024**2
    max_download_bytes: int = 64 * 1024**2
    poll_interval_s: float = 0.25  # how often the live stream looks for alerts written by other processes
    heartbeat_s: float = 15.0
    run_source: RunSource | None = None
    sandbox_factory: Any = None  # tests: a stand-in for Sandbox


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        error: str = "bad_request",
        errors: list | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.error, self.errors, self.headers = status, detail, error, errors, headers


class AlertNotifier:
    """Wakes live streams the moment a sandbox of this server raises an alert (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        item = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(item)
        return item

    def unsubscribe(self, item: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(item)

    def notify(self, _alert: dict[str, Any] | None = None) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(event.set)


class ServerState:
    def __init__(self, settings: ServerSettings) -> None:
        from rollcage.events import EventStore
        from rollcage.events.defaults import default_store
        from rollcage.sandbox.paths import default_event_db, state_dir

        self.settings = settings
        db = Path(settings.event_db or default_event_db())
        self.sink = default_store() if db == default_event_db() else EventStore(db)
        self.reader = EventReader(db)
        self.runs: RunSource = settings.run_source or DirRunSource(settings.runs_dir or state_dir() / "runs")
        self.notifier = AlertNotifier()
        self.sandboxes = SandboxManager(
            self.sink,
            max_sandboxes=settings.max_sandboxes,
            on_alert=self.notifier.notify,
            factory=settings.sandbox_factory,
        )
        self.metrics = Metrics(self.reader.alert_counts, lambda: len(self.sandboxes))
        self.ruleset = self.load_rules()

    def load_rules(self) -> Any:
        from rollcage.rules import RuleLoadError, RuleSet

        ruleset, errors = RuleSet.check(self.settings.rule_files)
        if errors:
            raise RuleLoadError(errors)
        return ruleset

    def close(self) -> None:
        self.sandboxes.close_all()
        self.reader.close()


def _error_response(
    status: int, detail: str, error: str, errors: list | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "error": error}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _rollcage_status(exc: RollcageError) -> tuple[int, str]:
    if isinstance(exc, SandboxNotFound):
        return 404, "not_found"
    if isinstance(exc, TooManySandboxes):
        return 429, "too_many_sandboxes"
    if isinstance(exc, ConfigError):
        return 422, "invalid_config"
    if isinstance(exc, SessionError):
        return 400, "session_error"
    if isinstance(exc, SandboxClosedError):
        return 409, "sandbox_closed"
    if isinstance(exc, SandboxFileError):
        if exc.errno == errno.ENOENT:
            return 404, "file_not_found"
        if exc.errno == errno.EFBIG:
            return 413, "file_too_large"
        return 400, "file_error"
    if isinstance(exc, HostError):
        return 503, "host_error"
    return 400, type(exc).__name__


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc) or 'request'}: {msg}")
    return "invalid request: " + "; ".join(parts)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    if settings is None:
        from rollcage.server.auth import load_or_create_token

        settings = ServerSettings(token=load_or_create_token())
    state = ServerState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = max(64, settings.max_sandboxes * 4)
        try:
            yield
        finally:
            await asyncio.to_thread(state.sandboxes.close_all)  # the store reader lives as long as the app

    app = FastAPI(
        title="rollcage",
        version=__version__,
        lifespan=lifespan,
        description="Sandboxes, runs, alerts and rules of a rollcage server. Authenticate with "
        "`Authorization: Bearer <token>` (the token file is in the server's state directory).",
    )
    app.state.rollcage = state

    # -- errors ----------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.detail, exc.error, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return _error_response(422, _validation_message(errors), "validation_error", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(exc.status_code, str(exc.detail), "http_error", headers=getattr(exc, "headers", None))

    @app.exception_handler(RollcageError)
    async def _rollcage(_request: Request, exc: RollcageError) -> JSONResponse:
        status, kind = _rollcage_status(exc)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _error_response(status, detail, kind)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _error_response(500, f"internal error: {type(exc).__name__}: {exc}", "internal")

    # -- metrics middleware ----------------------------------------------------------

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            state.metrics.requests.labels(request.method, path, str(status)).inc()
            state.metrics.latency.labels(request.method, path).observe(time.perf_counter() - start)

    # -- auth ------------------------------------------------------------------------

    bearer = HTTPBearer(auto_error=False, description="the server's token")

    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if creds is None or not token_matches(settings.token, creds.credentials):
            raise ApiError(
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                "unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=_ERRORS)

    @app.get("/health", response_model=m.Health, tags=["server"])
    def health() -> m.Health:
        """Liveness; needs no token."""
        return m.Health(status="ok", version=__version__)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=[Depends(require_token)],
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_ERRORS},
        tags=["server"],
    )
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    # -- sandboxes -------------------------------------------------------------------

    def info(sandbox: Any) -> m.SandboxInfo:
        frozen = bool(getattr(sandbox, "frozen", False))
        return m.SandboxInfo(
            id=sandbox.id,
            state="closed" if sandbox.closed else "frozen" if frozen else "running",
            config=sandbox.config.model_dump(mode="json"),
            run_id=sandbox.attribution.run_id,
            episode_id=sandbox.attribution.episode_id,
            step=sandbox.attribution.step,
            created=state.sandboxes.created(sandbox.id),
            alerts=len(sandbox.alerts),
        )

    @api.post("/sandboxes", status_code=201, response_model=m.SandboxInfo, tags=["sandboxes"])
    def create_sandbox(body: Annotated[m.CreateSandbox | None, Body()] = None) -> m.SandboxInfo:
        """Start a sandbox. ``config.network`` is its egress allow list, ``config.mode`` its monitor mode."""
        body = body or m.CreateSandbox()
        spec = body.config.model_dump(exclude_none=True)
        if "network" not in body.config.model_fields_set or body.config.network is None:
            spec.pop("network", None)
        if settings.rule_files:
            spec["rules"] = tuple(settings.rule_files)
        config = build_config(**spec)
        sandbox = state.sandboxes.create(config, run_id=body.run_id, episode_id=body.episode_id)
        state.metrics.sandboxes_created.inc()
        return info(sandbox)

    @api.get("/sandboxes", response_model=list[m.SandboxInfo], tags=["sandboxes"])
    def list_sandboxes() -> list[m.SandboxInfo]:
        """The sandboxes this server holds."""
        return [info(s) for s in state.sandboxes.list()]

    @api.get("/sandboxes/{sandbox_id}", response_model=m.SandboxInfo, tags=["sandboxes"])
    def get_sandbox(sandbox_id: str) -> m.SandboxInfo:
        return info(state.sandboxes.get(sandbox_id))

    @api.delete("/sandboxes/{sandbox_id}", status_code=204, response_class=Response, tags=["sandboxes"])
    def stop_sandbox(sandbox_id: str) -> Response:
        """Stop the sandbox and remove everything it left on the host."""
        state.sandboxes.stop(sandbox_id)
        return Response(status_code=204)

    @api.post("/sandboxes/{sandbox_id}/commands", response_model=m.CommandOutput, tags=["sandboxes"])
    def run_command(sandbox_id: str, body: m.RunCommand) -> m.CommandOutput:
        """Run a command in a session of the sandbox (state such as cwd persists per session)."""
        sandbox = state.sandboxes.get(sandbox_id)
        try:
            result = sandbox.run(body.command, timeout=body.timeout, session=body.session, step=body.step)
        except (OSError, HostError) as exc:  # the command took the sandbox down (e.g. kill -9 -1 inside)
            if isinstance(exc, SandboxFileError):
                raise
            with contextlib.suppress(Exception):
                state.sandboxes.stop(sandbox_id)
            raise ApiError(
                409, f"sandbox {sandbox_id} stopped while running the command ({exc}); it is gone", "sandbox_closed"
            ) from None
        outcome = "blocked" if result.blocked else "timed_out" if result.timed_out else "ok"
        state.metrics.commands.labels(outcome).inc()
        state.metrics.command_seconds.observe(result.duration_s)
        return m.CommandOutput(
            exit_code=result.exit_code,
            output=result.output,
            truncated=result.truncated,
            duration_s=result.duration_s,
            timed_out=result.timed_out,
            output_bytes=result.output_bytes,
            session=result.session,
            session_restarted=result.session_restarted,
            blocked=result.blocked,
        )

    @api.put(
        "/sandboxes/{sandbox_id}/files",
        status_code=204,
        response_class=Response,
        tags=["sandboxes"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload_file(
        sandbox_id: str,
        request: Request,
        path: Annotated[str, Query(min_length=1, max_length=4096, description="absolute path inside the sandbox")],
        mode: Annotated[int, Query(ge=0, le=0o7777, description="file mode (decimal)")] = 0o644,
    ) -> Response:
        """Write the request body to ``path`` inside the sandbox (parents are created)."""
        sandbox = state.sandboxes.get(sandbox_id)
        limit = settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"upload is {declared} bytes; this server takes at most {limit}", "too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"upload is more than {limit} bytes, the most this server takes", "too_large")
            chunks.append(chunk)
        await asyncio.to_thread(sandbox.write_file, path, b"".join(chunks), mode)
        return Response(status_code=204)

    @api.get(
        "/sandboxes/{sandbox_id}/files",
        response_class=Response,
        tags=["sandboxes"],
        responses={
            200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            **_ERRORS,
        },
    )
    def download_file(
        sandbox_id: str,
        path: Annotated[str, Query(min_length=1, max_length=4096, description="absolute path inside the sandbox")],
        max_bytes: Annotated[int | None, Query(ge=1, le=1024**3)] = None,
    ) -> Response:
        """The bytes of a file inside the sandbox (413 when larger than ``max_bytes``)."""
        sandbox = state.sandboxes.get(sandbox_id)
        data = sandbox.read_bytes(path, min(max_bytes or settings.max_download_bytes, settings.max_download_bytes))
        return Response(data, media_type="application/octet-stream")

    @api.get("/sandboxes/{sandbox_id}/alerts", response_model=list[m.Event], tags=["sandboxes"])
    def sandbox_alerts(sandbox_id: str) -> list[dict[str, Any]]:
        """Alerts raised in this sandbox so far."""
        state.sandboxes.get(sandbox_id)
        return state.reader.alerts(AlertFilter(sandbox_id=sandbox_id), limit=100_000)

    # -- alerts and events -----------------------------------------------------------

    def alert_filter(
        run_id: Annotated[str | None, Query(max_length=200)] = None,
        sandbox_id: Annotated[str | None, Query(max_length=200)] = None,
        episode_id: Annotated[str | None, Query(max_length=200)] = None,
        category: Annotated[list[str] | None, Query(description="repeatable")] = None,
        severity: Annotated[
            list[str] | None, Query(description="repeatable: critical, high, medium, low, info")
        ] = None,
        since: Annotated[datetime | None, Query(description="RFC 3339; alerts at or after")] = None,
        until: Annotated[datetime | None, Query(description="RFC 3339; alerts at or before")] = None,
    ) -> AlertFilter:
        for when in (since, until):
            if when is not None and not 1 <= when.year <= 9999:
                raise ApiError(422, "since/until must be a date between years 1 and 9999", "validation_error")
        return AlertFilter(run_id, sandbox_id, episode_id, tuple(category or ()), tuple(severity or ()), since, until)

    @api.get("/alerts", response_model=list[m.Event], tags=["alerts"])
    def list_alerts(
        flt: Annotated[AlertFilter, Depends(alert_filter)],
        after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Alerts, oldest first; with no ``after_id`` the newest ``limit`` of them."""
        return state.reader.alerts(flt, after_id=after_id, limit=limit, newest=after_id == 0)

    @api.get(
        "/alerts/stream",
        tags=["alerts"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **_ERRORS},
    )
    async def stream_alerts(
        request: Request,
        flt: Annotated[AlertFilter, Depends(alert_filter)],
        after_id: Annotated[int | None, Query(ge=0, le=2**62, description="replay alerts after this id")] = None,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    ) -> StreamingResponse:
        """Server-sent events: one ``alert`` event (``id:`` the store's row id) per new alert, as it is
        stored. Reconnecting with ``Last-Event-ID`` resumes where the stream left off."""
        if after_id is not None:
            cursor = after_id
        elif last_event_id is not None and last_event_id.strip().isdigit():
            cursor = int(last_event_id.strip())
        else:
            cursor = state.reader.last_id()

        async def events() -> AsyncIterator[str]:
            nonlocal cursor
            waiter = state.notifier.subscribe()
            state.metrics.stream_clients.inc()
            try:
                yield f"retry: 1000\n: connected at id {cursor}\n\n"
                idle = 0.0
                while True:
                    waiter[1].clear()
                    rows = state.reader.alerts(flt, after_id=cursor, limit=500)
                    for row in rows:
                        cursor = row["id"]
                        state.metrics.streamed.inc()
                        yield f"id: {row['id']}\nevent: alert\ndata: {json.dumps(row, default=str)}\n\n"
                    if rows:
                        idle = 0.0
                        continue
                    if await request.is_disconnected():
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter[1].wait(), settings.poll_interval_s)
                    idle += settings.poll_interval_s
                    if idle >= settings.heartbeat_s:
                        idle = 0.0
                        yield ": ping\n\n"
            finally:
                state.notifier.unsubscribe(waiter)
                state.metrics.stream_clients.dec()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @api.get("/events", response_model=list[m.Event], tags=["alerts"])
    def list_events(
        type: Annotated[
            list[str] | None, Query(description="event types (repeatable); default resource and gpu")
        ] = None,
        sandbox_id: Annotated[str | None, Query(max_length=200)] = None,
        run_id: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[datetime | None, Query()] = None,
        after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Stored events of the given types (the newest ``limit``, oldest first): the dashboard's charts."""
        if since is not None and not 1 <= since.year <= 9999:
            raise ApiError(422, "since must be a date between years 1 and 9999", "validation_error")
        types = tuple(type or ("resource", "gpu"))
        return state.reader.events(
            types, sandbox_id=sandbox_id, run_id=run_id, since=since, after_id=after_id, limit=limit
        )

    @api.get("/resources", response_model=list[dict[str, Any]], tags=["alerts"])
    def resource_sandboxes() -> list[dict[str, Any]]:
        """Sandboxes with CPU/memory/GPU samples in the store, most recent first."""
        return state.reader.resource_sandboxes()

    # -- runs ------------------------------------------------------------------------

    def run_summary(run_id: str) -> tuple[m.RunSummary, Any, list[dict[str, Any]]]:
        view = state.runs.open(run_id)
        episodes = view.episodes() if view is not None else []
        meta = view.meta() if view is not None else {}
        counts = state.reader.alert_counts(run_id)
        if not episodes:  # a run known only from its events: episodes from the store
            spans = episode_spans(state.reader, run_id)
            episodes = [{"episode_id": e, "started": s, "ended": t, "steps": None} for e, (s, t) in spans.items()]
        by_category = {c: sum(v.values()) for c, v in counts.items()}
        by_severity: Tally[str] = Tally()
        for v in counts.values():
            by_severity.update(v)
        judged = [e for e in episodes if isinstance(e.get("success"), bool)]
        successes = sum(1 for e in judged if e["success"])
        first, last = state.reader.run_span(run_id)
        times = [t for e in episodes for t in (e.get("started"), e.get("ended")) if isinstance(t, str)]
        summary = m.RunSummary(
            run_id=run_id,
            name=meta.get("name") if isinstance(meta.get("name"), str) else None,
            started=min([*times, *([first] if first else [])], default=None),
            ended=max([*times, *([last] if last else [])], default=None),
            episodes=len(episodes),
            successes=successes,
            success_rate=round(successes / len(judged), 4) if judged else None,
            alerts=sum(by_category.values()),
            alerts_by_category=by_category,
            alerts_by_severity=dict(by_severity),
        )
        return summary, meta, episodes

    def known_run(run_id: str) -> None:
        if not safe_id(run_id) or (state.runs.open(run_id) is None and run_id not in state.reader.run_ids()):
            raise ApiError(404, f"no run {run_id!r}", "not_found")

    @api.get("/runs", response_model=list[m.RunSummary], tags=["runs"])
    def list_runs() -> list[m.RunSummary]:
        """Every run: from run directories and from the event store."""
        ids = sorted(set(state.runs.run_ids()) | {r for r in state.reader.run_ids() if safe_id(r)})
        summaries = [run_summary(r)[0] for r in ids]
        return sorted(summaries, key=lambda s: s.started or "", reverse=True)

    @api.get("/runs/{run_id}", response_model=m.RunDetail, tags=["runs"])
    def get_run(run_id: str) -> m.RunDetail:
        """A run with its episodes (lanes) and every alert as a mark (time, episode, step, severity)."""
        known_run(run_id)
        summary, meta, episodes = run_summary(run_id)
        alerts = state.reader.alerts(AlertFilter(run_id=run_id), limit=20_000)
        marks = [
            {
                k: a.get(k)
                for k in ("id", "time", "episode_id", "step", "sandbox_id", "rule", "category", "severity", "action")
            }
            for a in alerts
        ]
        return m.RunDetail(**summary.model_dump(), meta=meta, episode_list=episodes, alert_marks=marks)

    @api.get("/runs/{run_id}/episodes", response_model=list[dict[str, Any]], tags=["runs"])
    def list_episodes(run_id: str) -> list[dict[str, Any]]:
        known_run(run_id)
        return run_summary(run_id)[2]

    @api.get("/runs/{run_id}/episodes/{episode_id}", response_model=m.Trajectory, tags=["runs"])
    def get_trajectory(run_id: str, episode_id: str) -> m.Trajectory:
        """The episode step by step (model message, tool call, observation) with each alert pinned to the
        step that caused it; alerts of steps the trajectory lacks are in ``unpinned_alerts``."""
        known_run(run_id)
        view = state.runs.open(run_id)
        record = view.trajectory(episode_id) if view is not None else None
        alerts = state.reader.alerts(AlertFilter(run_id=run_id, episode_id=episode_id), limit=20_000)
        if record is None:
            if not alerts:
                raise ApiError(404, f"no episode {episode_id!r} in run {run_id!r}", "not_found")
            record = {"episode_id": episode_id, "steps": []}
        if not alerts:  # events kept elsewhere: the alerts the rollout recorded with the episode
            alerts = [a for a in record.get("alerts") or [] if isinstance(a, dict)]
        steps = [dict(s) if isinstance(s, dict) else {"value": s} for s in record.get("steps") or []]
        for index, step in enumerate(steps):
            step.setdefault("step", index)
            step["alerts"] = []
        by_step = {s["step"]: s for s in steps}
        unpinned = []
        for alert in alerts:
            target = by_step.get(alert.get("step"))
            (target["alerts"] if target is not None else unpinned).append(alert)
        skip = ("steps", "run_id", "episode_id", "alerts", "unattributed_alerts")
        extra = {k: v for k, v in record.items() if k not in skip}
        return m.Trajectory(run_id=run_id, episode_id=episode_id, steps=steps, unpinned_alerts=unpinned, **extra)

    # -- rules -----------------------------------------------------------------------

    @api.get("/rules", response_model=list[dict[str, Any]], tags=["rules"])
    def list_rules() -> list[dict[str, Any]]:
        """The rules new sandboxes get: the shipped ones plus the server's rule files."""
        return [r.summary() for r in state.ruleset.rules]

    @api.post("/rules/validate", response_model=m.ValidateResult, tags=["rules"])
    def validate_rules(body: m.ValidateRules) -> m.ValidateResult:
        """Check a rule file's text (on top of the shipped rules unless ``defaults`` is false)."""
        from rollcage.rules import RuleSet

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rules.yaml"
            path.write_text(body.yaml, encoding="utf-8", errors="surrogatepass")
            try:
                ruleset, errors = RuleSet.check([path], default=body.defaults)
            except Exception as exc:  # e.g. yaml's ReaderError for control characters escapes RuleSet.check
                message = " ".join(str(exc).split())
                return m.ValidateResult(ok=False, rules=0, errors=[m.RuleProblem(source="<input>", line=0,
                                        kind="file", name=None, message=f"cannot parse: {message}")])  # fmt: skip
        problems = [
            m.RuleProblem(
                source="<input>" if e.source == str(path) else e.source,
                line=e.line,
                kind=e.kind,
                name=e.name,
                message=e.message,
            )
            for e in errors
        ]
        return m.ValidateResult(ok=not errors, rules=len(ruleset.rules) if ruleset else 0, errors=problems)

    @api.post("/rules/reload", response_model=m.ReloadResult, tags=["rules"])
    def reload_rules() -> m.ReloadResult:
        """Re-read the shipped rules and the server's rule files; sandboxes created from now on use them."""
        from rollcage.monitor import hub
        from rollcage.rules import RuleLoadError

        try:
            ruleset = state.load_rules()
        except RuleLoadError as exc:
            errors = [{"source": e.source, "line": e.line, "message": e.message} for e in exc.errors]
            raise ApiError(422, f"rules not reloaded: {exc}", "invalid_rules", errors) from None
        with hub._rulesets_lock:  # the monitor caches parsed rule sets and engines per process
            hub._rulesets.clear()
            hub._engines.clear()
        state.ruleset = ruleset
        return m.ReloadResult(rules=len(ruleset.rules), files=[str(f) for f in settings.rule_files])

    app.include_router(api)

    # -- dashboard -------------------------------------------------------------------

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app
