"""Task directories: ``task.yaml`` validated with pydantic, plus ``tests/`` and ``solution.sh``.

A rollcage task directory holds::

    task.yaml      id, instruction, setup, timeouts, max_steps, network, tags, category, ...
    tests/run.sh   the verifier: exits 0 on success, may print ``SCORE: <0..1>``
    solution.sh    the reference solution (run from the workspace)
    files/         optional: copied into the workspace before ``setup`` runs

Terminal-Bench directories (``run-tests.sh``, ``tests/test_outputs.py``, ``Dockerfile``) are
recognised and mapped by :mod:`rollcage.envs.terminal_bench`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rollcage.errors import RollcageError
from rollcage.gateway.policy import NetworkPolicy

TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"


class TaskError(RollcageError):
    """A task directory or ``task.yaml`` that cannot be used; the message names the file and field."""


class Timeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: float = Field(default=60.0, gt=0, le=3600, description="per-command timeout, s")
    episode: float = Field(default=900.0, gt=0, le=86_400, description="wall-clock limit of one episode, s")
    setup: float = Field(default=120.0, gt=0, le=3600, description="timeout of each setup command, s")
    verifier: float = Field(default=120.0, gt=0, le=3600, description="timeout of the verifier, s")


class TaskSpec(BaseModel):
    """The validated contents of ``task.yaml``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=TASK_ID_PATTERN)
    instruction: str = Field(min_length=1)
    setup: list[str] = Field(default_factory=list, description="shell commands run in the workspace before the agent")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_steps: int = Field(default=30, ge=1, le=10_000)
    network: list[str] | None = Field(default=None, description="egress allow entries; null: loopback only")
    tags: list[str] = Field(default_factory=list)
    category: str = "general"
    difficulty: Literal["easy", "medium", "hard"] = "easy"
    temptation: bool = False
    rogue_shortcut: str | None = Field(default=None, description="the unsafe shortcut a temptation task offers")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables in the sandbox")
    workdir: str = "/work"
    memory: str = "512m"
    cpus: float = Field(default=1.0, gt=0, le=64)
    pids: int = Field(default=256, ge=16, le=100_000)

    @field_validator("instruction")
    @classmethod
    def _instruction_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("instruction must not be blank")
        return value

    @field_validator("network")
    @classmethod
    def _network_is_valid(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            try:
                NetworkPolicy.from_entries(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"bad network policy: {exc}") from None
        return value

    @model_validator(mode="after")
    def _temptation_has_shortcut(self) -> TaskSpec:
        if self.temptation and not (self.rogue_shortcut and self.rogue_shortcut.strip()):
            raise ValueError("temptation tasks must describe their rogue_shortcut")
        return self


@dataclass
class Task:
    """A loaded task: its spec plus where its verifier, solution and files come from."""

    spec: TaskSpec
    path: Path | None = None
    tests_dir: Path | None = None
    verifier_command: str = 'bash "$TEST_DIR/run.sh"'
    solution: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # workspace-relative path -> content
    kind: Literal["rollcage", "terminal-bench"] = "rollcage"
    extra_verifier_files: dict[str, bytes] = field(default_factory=dict)  # test-dir relative -> content
    notes: list[str] = field(default_factory=list)  # what the loader changed or skipped

    @property
    def id(self) -> str:
        return self.spec.id

    def test_files(self) -> dict[str, tuple[bytes, int]]:
        """Files of the verifier, relative to the test directory, with their modes."""
        out: dict[str, tuple[bytes, int]] = {}
        if self.tests_dir is not None and self.tests_dir.is_dir():
            out.update(_read_tree(self.tests_dir))
        for name, data in self.extra_verifier_files.items():
            out[name] = (data, 0o755)
        return out


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: field {where!r}: {msg}")
    return "invalid task file: " + "; ".join(lines)


def parse_spec(data: Any, source: str) -> TaskSpec:
    if not isinstance(data, dict):
        raise TaskError(f"invalid task file: {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise TaskError(format_validation_error(exc, source)) from None


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"cannot read task file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TaskError(f"invalid task file: {path}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaskError(f"invalid task file: {path}{where}: YAML error: {problem}") from None


def _read_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            mode = 0o755 if os.access(full, os.X_OK) or name.endswith(".sh") else 0o644
            out[rel] = (full.read_bytes(), mode)
    return out


def load_task(path: str | os.PathLike[str]) -> Task:
    """Load a rollcage or Terminal-Bench task directory (or a ``task.yaml`` path)."""
    path = Path(path)
    if path.name in ("task.yaml", "task.yml") and path.is_file():
        path = path.parent
    if not path.is_dir():
        raise TaskError(f"task directory {path} does not exist")
    task_file = path / "task.yaml"
    if not task_file.is_file():
        raise TaskError(f"{path} is not a task directory: no task.yaml")

    from rollcage.envs import terminal_bench

    if terminal_bench.is_terminal_bench_dir(path):
        return terminal_bench.load(path)

    spec = parse_spec(read_yaml(task_file), str(task_file))
    tests_dir = path / "tests"
    if not (tests_dir / "run.sh").is_file():
        raise TaskError(f"task {spec.id} ({path}): missing verifier tests/run.sh")
    solution_file = path / "solution.sh"
    solution = solution_file.read_text(encoding="utf-8") if solution_file.is_file() else None
    files = (
        {rel: data for rel, (data, _mode) in _read_tree(path / "files").items()} if (path / "files").is_dir() else {}
    )
    return Task(spec=spec, path=path, tests_dir=tests_dir, solution=solution, files=files)


def load_tasks(root: str | os.PathLike[str]) -> list[Task]:
    """Every task directory directly under ``root``, sorted by id; duplicate ids are an error."""
    root = Path(root)
    if not root.is_dir():
        raise TaskError(f"task root {root} is not a directory")
    tasks: dict[str, Task] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and (child / "task.yaml").is_file():
            task = load_task(child)
            if task.id in tasks:
                raise TaskError(f"duplicate task id {task.id!r}: {tasks[task.id].path} and {child}")
            tasks[task.id] = task
    return [tasks[k] for k in sorted(tasks)]


def builtin_tasks_dir() -> Path | None:
    """Where the bundled task suite lives: ``$ROLLCAGE_TASKS_DIR``, package data, or the repository's ``tasks/``."""
    env = os.environ.get("ROLLCAGE_TASKS_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here / "tasks", here.parent.parent / "tasks"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None
