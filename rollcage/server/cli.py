"""``rollcage serve``: the admin API and dashboard on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="bearer token file (created 0600 if absent); default: server.token in the state directory",
        ),
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="run directories (default: <state>/runs)")] = None,
    events_db: Annotated[
        Path | None, typer.Option("--events-db", help="event store (default: <state>/events.db)")
    ] = None,
    rules: Annotated[list[Path] | None, typer.Option("--rules", help="extra rule file for new sandboxes")] = None,
    max_sandboxes: Annotated[int, typer.Option(help="most sandboxes held at once")] = 64,
) -> None:
    """Serve the REST API, the live alert stream, /metrics and the dashboard."""
    import uvicorn

    from rollcage.errors import RollcageError
    from rollcage.server.app import ServerSettings, create_app
    from rollcage.server.auth import default_token_file, load_or_create_token

    try:
        path = token_file or default_token_file()
        token = load_or_create_token(path)
        app = create_app(
            ServerSettings(
                token=token,
                event_db=events_db,
                runs_dir=runs_dir,
                rule_files=list(rules or []),
                max_sandboxes=max_sandboxes,
            )
        )
    except RollcageError as exc:
        typer.echo(f"rollcage: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"rollcage server on http://{shown}:{port}  (token in {path})", err=True)
    typer.echo(f"dashboard: http://{shown}:{port}/#token=<token>", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
