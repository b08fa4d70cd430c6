"""rollcage: sandboxes, sensors and rules for running and training tool-using agents safely."""

from rollcage.config import SandboxConfig
from rollcage.errors import (
    ConfigError,
    HostError,
    RollcageError,
    SandboxClosedError,
    SandboxFileError,
    SessionError,
)
from rollcage.sandbox import AsyncSandbox, CommandResult, Sandbox, SandboxPool

__version__ = "0.1.0"

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
]
