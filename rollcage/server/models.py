"""Request and response bodies of the REST API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_SIZE = r"^\s*\d+(\.\d+)?\s*[kmgtKMGT]?[iI]?[bB]?\s*$"
Size = int | str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what went wrong in words, and the kind of error."""

    detail: str
    error: str
    errors: list[dict[str, Any]] | None = None


class SandboxSpec(BaseModel):
    """A sandbox's configuration, as in :class:`rollcage.SandboxConfig` (fields left out keep their
    defaults). ``rootfs`` and extra ``rules`` files are the server's to choose and not accepted here."""

    model_config = ConfigDict(extra="forbid")

    memory: Size | None = Field(default=None, description="memory limit: bytes or '512m'")
    cpus: float | None = Field(default=None, gt=0, le=1024)
    pids: int | None = Field(default=None, ge=8, le=4_194_304)
    tmp_size: Size | None = None
    timeout: float | None = Field(default=None, gt=0, le=86_400, description="default per-command timeout, s")
    output_limit: int | None = Field(default=None, ge=1024, le=1024**3)
    workdir: str | None = Field(default=None, max_length=4096)
    env: dict[str, str] | None = None
    hostname: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
    network: list[str] | None = Field(
        default=None,
        max_length=512,
        description="egress allow list (domain, *.domain, host:port, CIDR[:port]); null: loopback only; "
        "[]: through the gateway with everything denied and recorded",
    )
    mode: Literal["off", "monitor", "enforce"] | None = None
    gpu_memory_budget: Size | None = None
    gpu_commands: list[str] | None = Field(default=None, max_length=256)

    @field_validator("memory", "tmp_size", "gpu_memory_budget")
    @classmethod
    def _size(cls, value: Size | None) -> Size | None:
        import re

        if isinstance(value, str) and not re.match(_SIZE, value):
            raise ValueError(f"invalid size {value!r}: use bytes or a string like '512m', '2g'")
        return value


class CreateSandbox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: SandboxSpec = Field(default_factory=SandboxSpec)
    run_id: str | None = Field(default=None, max_length=200)
    episode_id: str | None = Field(default=None, max_length=200)


class SandboxInfo(BaseModel):
    id: str
    state: Literal["running", "frozen", "closed"]
    config: dict[str, Any]
    run_id: str | None = None
    episode_id: str | None = None
    step: int | None = None
    created: float
    alerts: int


class RunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(max_length=1024 * 1024, description="a bash command line; runs as is")
    session: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timeout: float | None = Field(default=None, gt=0, le=86_400)
    step: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("command")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("command contains a NUL byte")
        return value


class CommandOutput(BaseModel):
    exit_code: int
    output: str
    truncated: bool
    duration_s: float
    timed_out: bool
    output_bytes: int
    session: str
    session_restarted: bool
    blocked: bool


class Event(BaseModel):
    """A stored event: ``id`` (the store's row id), the common fields, then its own fields."""

    model_config = ConfigDict(extra="allow")

    id: int
    type: str
    time: str
    sandbox_id: str | None = None
    run_id: str | None = None
    episode_id: str | None = None
    step: int | None = None


class RunSummary(BaseModel):
    run_id: str
    name: str | None = None
    started: str | None = None
    ended: str | None = None
    episodes: int
    successes: int
    success_rate: float | None
    alerts: int
    alerts_by_category: dict[str, int]
    alerts_by_severity: dict[str, int]


class RunDetail(RunSummary):
    meta: dict[str, Any]
    episode_list: list[dict[str, Any]]
    alert_marks: list[dict[str, Any]]


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_id: str
    episode_id: str
    steps: list[dict[str, Any]]
    unpinned_alerts: list[dict[str, Any]]


class ValidateRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(max_length=4 * 1024 * 1024, description="a rule file's text")
    defaults: bool = Field(default=True, description="check it on top of the shipped rules")


class RuleProblem(BaseModel):
    source: str
    line: int
    kind: str
    name: str | None
    message: str


class ValidateResult(BaseModel):
    ok: bool
    rules: int
    errors: list[RuleProblem]


class ReloadResult(BaseModel):
    rules: int
    files: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
