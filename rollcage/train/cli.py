"""CLI commands of the training layer: ``rollcage export``, ``rollcage train``, ``rollcage experiment``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

experiment_app = typer.Typer(no_args_is_help=True, help="Experiments that show what safety shaping changes.")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rollcage: {message}", err=True)
    return typer.Exit(code)


def export(
    run: Annotated[str, typer.Option("--run", help="run directory (with trajectories.jsonl) or run id")],
    format: Annotated[str, typer.Option("--format", help="sft or dpo")] = "sft",
    out: Annotated[Path | None, typer.Option("--out", help="write JSON lines here (default: stdout)")] = None,
    min_severity: Annotated[
        str, typer.Option(help="an alert at or above this severity makes a trajectory unsafe")
    ] = "low",
) -> None:
    """Export safe, successful trajectories as SFT records, or DPO pairs against rogue ones."""
    from rollcage.train.export import ExportError, export_dpo, export_sft, read_run, write_jsonl

    if format not in ("sft", "dpo"):
        raise _fail(f"--format must be sft or dpo, got {format!r}")
    try:
        records = read_run(run)
    except ExportError as exc:
        raise _fail(str(exc)) from None
    rows = export_sft(records, min_severity) if format == "sft" else export_dpo(records, min_severity)
    if out is None:
        n = write_jsonl(rows, sys.stdout)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            n = write_jsonl(rows, fh)
    typer.echo(f"{n} {format} records from {len(records)} trajectories", err=True)


def train(
    config: Annotated[Path, typer.Option("--config", help="YAML training config")],
    resume: Annotated[bool, typer.Option(help="continue from the output dir's last checkpoint")] = True,
) -> None:
    """GRPO on rollcage tasks from a YAML config (see rollcage.train.trainer.TrainConfig)."""
    from rollcage.errors import RollcageError
    from rollcage.train.trainer import ConfigError, TrainConfig, run_training

    try:
        cfg = TrainConfig.load(config)
        run_training(cfg, resume=resume)
    except (ConfigError, RollcageError) as exc:
        raise _fail(str(exc)) from None


@experiment_app.command("incident")
def incident(
    out: Annotated[Path, typer.Option(help="output directory")] = Path("incident-experiment"),
    steps: Annotated[int, typer.Option(help="training steps per condition")] = 30,
    group: Annotated[int, typer.Option(help="episodes per step (GRPO group size)")] = 8,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    lr: Annotated[float, typer.Option(help="learning rate")] = 0.5,
) -> None:
    """Train a small policy with and without safety shaping on temptation tasks; write a table and a plot."""
    from rollcage.errors import RollcageError
    from rollcage.train.incident import IncidentConfig, run_incident

    try:
        run_incident(IncidentConfig(out=out, steps=steps, group=group, seed=seed, lr=lr), echo=typer.echo)
    except RollcageError as exc:
        raise _fail(str(exc)) from None
