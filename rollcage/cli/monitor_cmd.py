"""``rollcage analyze`` and ``rollcage alerts``: the monitor's verdicts from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rollcage.errors import RollcageError

BLOCKING_ACTIONS = {"block", "kill", "freeze", "stop", "end_episode"}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rollcage: {message}", err=True)
    return typer.Exit(code)


def verdict_for(command: str, engine: Any, files: dict[str, str] | None = None) -> dict[str, Any]:
    """Static analysis plus the rules over one command (or script): allow, alert or block."""
    from rollcage.monitor.static import analyze_command, analyze_file

    analysis = analyze_command(command, files=files)
    events = [{"type": "command", "sandbox_id": "analyze", **analysis.to_event_data()}]
    for path, content in (files or {}).items():
        events.append({"type": "file", "sandbox_id": "analyze", **analyze_file(content, path).to_event_data()})
    findings: list[dict[str, Any]] = []
    for event in events:
        for alert in engine.evaluate(event):
            finding = {"rule": alert.rule, "category": alert.category, "severity": alert.severity,
                       "mitre": list(alert.mitre), "action": alert.action}  # fmt: skip
            if finding not in findings:
                findings.append(finding)
    engine.reset("analyze")  # each input is judged on its own
    if any(f["action"] in BLOCKING_ACTIONS for f in findings):
        verdict = "block"
    elif findings:
        verdict = "alert"
    else:
        verdict = "allow"
    result: dict[str, Any] = {"command": command, "verdict": verdict, "findings": findings}
    if analysis.parse_error:
        result["parse_error"] = analysis.parse_error
    return result


def analyze(
    command: Annotated[str | None, typer.Argument(help="a command line to judge")] = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", help="one command per line (or JSON lines)")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="FILE holds JSON objects with a 'command' field")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (the default for -f)")] = False,
    rules: Annotated[list[Path] | None, typer.Option("--rules", help="extra rule file")] = None,
) -> None:
    """Judge commands before they run: static analysis (bash AST, de-obfuscation) and the rules."""
    from rollcage.rules import RuleEngine, RuleSet

    if (command is None) == (file is None):
        raise _fail("give either a COMMAND or -f FILE")
    try:
        engine = RuleEngine(RuleSet.load(list(rules or [])), mode="enforce")
    except RollcageError as exc:
        raise _fail(str(exc)) from None
    if command is not None:
        result = verdict_for(command, engine)
        if as_json:
            typer.echo(json.dumps(result))
        else:
            typer.echo(result["verdict"])
            for f in result["findings"]:
                typer.echo(f"  {f['severity']:8} {f['category']:18} {f['rule']} ({', '.join(f['mitre'])})")
        return
    assert file is not None
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        files = None
        text = line
        if jsonl:
            try:
                record = json.loads(line)
                text = record["command"]
                files = record.get("files")
                if not isinstance(text, str) or not (files is None or isinstance(files, dict)):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                typer.echo(json.dumps({"line": number, "error": "expected a JSON object with a 'command' string"}))
                continue
        sys.stdout.write(json.dumps(verdict_for(text, engine, files)) + "\n")


def alerts(
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    sandbox: Annotated[str | None, typer.Option("--sandbox", help="only this sandbox")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    db: Annotated[Path | None, typer.Option("--db", help="event store (default: the state directory's)")] = None,
) -> None:
    """List alerts from the event store, oldest first."""
    from rollcage.events import EventStore
    from rollcage.sandbox.paths import default_event_db

    path = db or default_event_db()
    if not path.exists():
        raise _fail(f"no event store at {path}")
    store = EventStore(path)
    try:
        found = list(store.query(type="alert", run_id=run, sandbox_id=sandbox))
    finally:
        store.close()
    for alert in found:
        if as_json:
            typer.echo(json.dumps(alert, default=str))
        else:
            where = f"run={alert.get('run_id')} sandbox={alert.get('sandbox_id')} step={alert.get('step')}"
            typer.echo(f"{alert['time']} {alert['severity']:8} {alert['category']:18} {alert['rule']} [{where}]")
