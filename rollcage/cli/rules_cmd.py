"""``rollcage rules``: validate rule files and list the loaded rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

rules_app = typer.Typer(no_args_is_help=True, help="Validate and list detection rules.")


@rules_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="rule files (YAML)")],
    no_defaults: Annotated[
        bool, typer.Option("--no-defaults", help="check the files alone, not on top of the shipped rules")
    ] = False,
) -> None:
    """Check rule files; print FILE:LINE: rule 'NAME': message per error and exit 1 if any."""
    from rollcage.rules import RuleSet

    ruleset, errors = RuleSet.check(files, default=not no_defaults)
    if errors:
        for error in errors:
            typer.echo(str(error))
        raise typer.Exit(1)
    assert ruleset is not None
    mine = {str(f) for f in files}
    count = sum(1 for r in ruleset.rules if r.source in mine)
    typer.echo(f"ok: {len(files)} file(s), {count} rule(s) defined or changed, {len(ruleset.rules)} loaded")


@rules_app.command("list")
def list_rules(
    rules: Annotated[list[Path] | None, typer.Option("--rules", help="extra rule file (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per rule")] = False,
    no_defaults: Annotated[bool, typer.Option("--no-defaults", help="leave out the shipped rules")] = False,
) -> None:
    """Show every loaded rule: name, category, severity, action, enabled, source file."""
    from rollcage.rules import RuleSet

    ruleset, errors = RuleSet.check(rules or [], default=not no_defaults)
    if errors:
        for error in errors:
            typer.echo(str(error), err=True)
        raise typer.Exit(1)
    assert ruleset is not None
    if as_json:
        for rule in ruleset.rules:
            typer.echo(json.dumps(rule.summary(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "category", "severity", "action", "enabled", "source"):
        table.add_column(column, overflow="fold")
    for rule in ruleset.rules:
        summary = rule.summary()
        table.add_row(
            rule.name, rule.category, rule.severity, rule.action, "yes" if rule.enabled else "no", summary["source"]
        )
    Console(width=200).print(table)
