"""Exception types that rollcage raises on purpose.

Every failure a user can cause (bad config, unknown session, closed sandbox, missing
rootfs) surfaces as a subclass of :class:`RollcageError` with a message that says what to
fix, so callers can catch one type and never see a raw traceback from our internals.
"""

from __future__ import annotations


class RollcageError(Exception):
    """Base class for every error rollcage raises deliberately."""


class ConfigError(RollcageError, ValueError):
    """A configuration value is invalid; nothing was created."""


class HostError(RollcageError):
    """The host lacks something rollcage needs (root, bubblewrap, cgroups)."""


class SandboxClosedError(RollcageError):
    """An operation was attempted on a sandbox that is already stopped."""


class SessionError(RollcageError):
    """A session name is invalid or a session could not be started."""


class SandboxFileError(RollcageError, OSError):
    """A file operation inside the sandbox failed (missing path, read-only, too large)."""


class WriteBlockedError(SandboxFileError):
    """The runtime monitor (enforce mode) refused to let the agent write this file."""
