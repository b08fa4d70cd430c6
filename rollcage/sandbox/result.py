"""What running a command returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command in a session.

    ``output`` is stdout and stderr interleaved in the order the command wrote them,
    decoded as UTF-8 with undecodable bytes replaced; at most ``output_limit`` bytes are
    kept (``truncated`` says when more was produced; ``output_bytes`` counts it all).
    A command stopped by its timeout has ``timed_out`` set and ``exit_code`` 124, as
    coreutils ``timeout`` reports it.
    """

    exit_code: int
    output: str
    truncated: bool
    duration_s: float
    timed_out: bool
    output_bytes: int = 0
    session: str = "default"
    session_restarted: bool = False
    blocked: bool = False  # the runtime monitor refused to run it (enforce mode); output says why

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out
