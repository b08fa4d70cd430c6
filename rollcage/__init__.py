"""rollcage: sandboxes, sensors and rules for running and training tool-using agents safely."""

from rollcage.config import SandboxConfig
from rollcage.errors import (
    ConfigError,
    HostError,
    RollcageError,
    SandboxClosedError,
    SandboxFileError,
    SessionError,
    WriteBlockedError,
)
from rollcage.sandbox import AsyncSandbox, CommandResult, Sandbox, SandboxPool

__version__ = "0.1.0"


def make(env_id: str, **kwargs: object) -> object:
    """A registered environment, e.g. ``rollcage.make("rollcage:terminal/csv-sum-by-region")``."""
    from rollcage.envs import make as _make

    return _make(env_id, **kwargs)


__all__ = [
    "AsyncSandbox",
    "CommandResult",
    "ConfigError",
    "HostError",
    "RollcageError",
    "Sandbox",
    "SandboxClosedError",
    "SandboxConfig",
    "SandboxFileError",
    "SandboxPool",
    "SessionError",
    "WriteBlockedError",
    "make",
]
