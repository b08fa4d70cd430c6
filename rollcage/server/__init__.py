"""The admin server: REST API over sandboxes, runs and alerts, a live alert stream,
Prometheus metrics and the incident dashboard (``rollcage serve``).

Importing this package is cheap; FastAPI is loaded by :func:`rollcage.server.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollcage.server.app import ServerSettings


def create_app(settings: ServerSettings | None = None) -> Any:
    """The FastAPI application (see :mod:`rollcage.server.app`)."""
    from rollcage.server.app import create_app as _create

    return _create(settings)


__all__ = ["create_app"]
