"""``rollcage`` command line: sandboxes, garbage collection, the demo."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from rollcage.cli import monitor_cmd, run_cmd
from rollcage.cli.rules_cmd import rules_app
from rollcage.config import build_config
from rollcage.errors import RollcageError
from rollcage.server import cli as server_cmd
from rollcage.train import cli as train_cmd

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
sandbox_app = typer.Typer(no_args_is_help=True, help="Run commands in sandboxes.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(rules_app, name="rules")
app.command()(monitor_cmd.analyze)
app.command()(monitor_cmd.alerts)
app.command()(run_cmd.run)
app.command()(server_cmd.serve)
app.command()(train_cmd.export)
app.command()(train_cmd.train)
app.add_typer(train_cmd.experiment_app, name="experiment")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rollcage: {message}", err=True)
    return typer.Exit(code)


@sandbox_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox_run(
    command: Annotated[list[str], typer.Argument(help="command to run (after --)")],
    memory: Annotated[str, typer.Option(help="memory limit, e.g. 512m")] = "1g",
    cpus: Annotated[float, typer.Option(help="CPU quota in cores")] = 1.0,
    pids: Annotated[int, typer.Option(help="max processes")] = 512,
    timeout: Annotated[float, typer.Option(help="wall-clock limit in seconds")] = 600.0,
    events: Annotated[Path | None, typer.Option(help="append events as JSON lines here")] = None,
    rootfs: Annotated[Path | None, typer.Option(help="root directory instead of the host's")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE passed into the sandbox")] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            help="let traffic to ENTRY out through the egress gateway (domain, *.domain, host:port, "
            "CIDR[:port]); repeatable"
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="runtime monitor: monitor (record alerts), enforce (also act on them) or off")
    ] = "monitor",
    net: Annotated[
        bool, typer.Option("--net", help="route through the egress gateway even with nothing allowed (record attempts)")
    ] = False,
) -> None:
    """Run COMMAND in a fresh sandbox, stream its output, exit with its exit code."""
    from rollcage.events import Fanout, JsonlSink
    from rollcage.events.defaults import default_store
    from rollcage.sandbox import Sandbox
    from rollcage.sandbox.host import require_root

    pairs = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--env expects KEY=VALUE, got {item!r}")
        pairs[key] = value
    text = command[0] if len(command) == 1 else shlex.join(command)
    try:
        require_root()
        network = list(allow or []) if (allow or net) else None
        config = build_config(
            memory=memory,
            cpus=cpus,
            pids=pids,
            timeout=timeout,
            rootfs=rootfs,
            env=pairs,
            network=network,
            mode=mode,
        )
        sink = Fanout(default_store(), JsonlSink(events)) if events else default_store()
        with Sandbox(config, events=sink) as sandbox:
            result = sandbox.run(text, on_output=_stream)
            if result.blocked:
                typer.echo(result.output, err=True, nl=False)
    except RollcageError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    if result.timed_out:
        typer.echo(f"rollcage: command timed out after {timeout:g}s", err=True)
    raise typer.Exit(result.exit_code)


def _stream(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def gc() -> None:
    """Remove processes, cgroups, directories and uid leases left by dead supervisors."""
    from rollcage.sandbox.gc import collect
    from rollcage.sandbox.host import require_root

    try:
        require_root()
    except RollcageError as exc:
        raise _fail(str(exc)) from None
    report = collect()
    if report.empty:
        typer.echo("nothing to remove")
        return
    for line in report.lines():
        typer.echo(f"removed {line}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where report.md, report.json and the runs go")] = Path("rollcage-demo"),
) -> None:
    """Replay the incident: rogue and benign episodes in real sandboxes against a simulated internet."""
    from rollcage.demo import run_demo
    from rollcage.sandbox.host import require_root

    try:
        require_root()
        raise typer.Exit(run_demo(out))
    except RollcageError as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
