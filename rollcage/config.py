"""Validated configuration for one sandbox.

The config is frozen and validated up front so that a bad value is reported before any
namespace, cgroup or directory exists ("nothing half-made").
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from rollcage.errors import ConfigError
from rollcage.gateway.policy import NetworkPolicy

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: object) -> int:
    """Turn ``"512m"``, ``"1.5g"``, ``"64MiB"`` or an int into a byte count."""
    if isinstance(value, bool):
        raise ValueError("size must be a number of bytes or a string like '512m'")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"invalid size {value!r}: use bytes or a string like '512m', '2g'")


ByteSize = Annotated[int, BeforeValidator(parse_size)]

_FORBIDDEN_WORKDIRS = {"/", "/proc", "/dev", "/sys", "/run", "/tmp", "/etc", "/usr", "/bin", "/lib"}


class SandboxConfig(BaseModel):
    """Resource limits, filesystem layout and environment of one sandbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory: ByteSize = Field(default=1024**3, ge=16 * 1024**2, description="memory limit in bytes")
    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPU quota in cores")
    pids: int = Field(default=512, ge=8, le=4_194_304, description="max processes and threads")
    tmp_size: ByteSize = Field(default=256 * 1024**2, ge=1024**2, description="size of private /tmp")
    timeout: float = Field(default=600.0, gt=0, le=86_400, description="default per-command timeout, s")
    output_limit: int = Field(default=1024**2, ge=1024, le=1024**3, description="bytes kept per command")
    rootfs: Path | None = Field(default=None, description="root directory; host root when None")
    workdir: str = Field(default="/work", description="writable workspace path inside the sandbox")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    hostname: str = Field(default="sandbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
    network: NetworkPolicy | None = Field(
        default=None,
        description="egress policy; None keeps the sandbox on loopback only, a policy (even an empty "
        "one: deny all) gives it a path through the egress gateway, where every attempt is recorded",
    )

    mode: Literal["off", "monitor", "enforce"] = Field(
        default="monitor",
        description="runtime monitor: 'monitor' records events and alerts, 'enforce' also acts on them "
        "(block, kill, freeze, stop, end episode), 'off' runs no sensors or rules",
    )
    rules: tuple[Path, ...] = Field(default=(), description="extra rule files, loaded after the shipped ones")
    gpu_memory_budget: ByteSize | None = Field(default=None, ge=0, description="GPU memory the sandbox may use")
    gpu_commands: tuple[str, ...] = Field(
        default=(), description="glob patterns of command lines the task starts for GPU work; other GPU use is diverted"
    )

    @field_validator("rules")
    @classmethod
    def _rules_exist(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for path in value:
            if not Path(path).is_file():
                raise ValueError(f"rule file {str(path)!r} does not exist")
        return tuple(Path(p).resolve() for p in value)

    @field_validator("network", mode="before")
    @classmethod
    def _network_from_list(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return NetworkPolicy.from_entries(value)
        return value

    @field_validator("rootfs")
    @classmethod
    def _rootfs_exists(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = Path(value).resolve()
        if not value.is_dir():
            raise ValueError(f"rootfs {str(value)!r} is not a directory")
        if not (value / "bin" / "bash").exists() and not (value / "usr" / "bin" / "bash").exists():
            raise ValueError(f"rootfs {str(value)!r} has no /bin/bash, which sessions need")
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir_is_safe(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value:
            raise ValueError("workdir must be an absolute path")
        normal = posixpath.normpath(value)
        if normal in _FORBIDDEN_WORKDIRS or normal.startswith(("/proc/", "/dev/", "/sys/", "/run/")):
            raise ValueError(f"workdir {value!r} would shadow a system directory")
        return normal

    @field_validator("env")
    @classmethod
    def _env_is_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"invalid environment variable name {key!r}")
            if "\0" in val:
                raise ValueError(f"environment variable {key!r} contains a NUL byte")
        return value

    @field_validator("cpus")
    @classmethod
    def _cpus_fit_host(cls, value: float) -> float:
        if value < 0.01:
            raise ValueError("cpus must be at least 0.01")
        return value


def build_config(**kwargs: object) -> SandboxConfig:
    """Build a config, turning pydantic's errors into one readable :class:`ConfigError`."""
    try:
        return SandboxConfig(**kwargs)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per bad field: ``memory: invalid size 'lots' ...``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return "invalid sandbox config: " + "; ".join(lines)


def host_cpu_count() -> int:
    """CPUs this process may use, for sanity checks and benchmarks."""
    return len(os.sched_getaffinity(0))
