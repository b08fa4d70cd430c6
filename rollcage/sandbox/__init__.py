"""Sandbox runtime: namespaces, cgroups, sessions, pool, garbage collection."""

from rollcage.sandbox.async_sandbox import AsyncSandbox
from rollcage.sandbox.pool import SandboxPool
from rollcage.sandbox.result import CommandResult
from rollcage.sandbox.sandbox import Sandbox

__all__ = ["AsyncSandbox", "CommandResult", "Sandbox", "SandboxPool"]
