"""Load Terminal-Bench task directories as rollcage tasks.

Terminal-Bench layout::

    task.yaml             instruction, difficulty, category, tags, max_agent_timeout_sec, max_test_timeout_sec, ...
    Dockerfile            FROM ..., WORKDIR /app, COPY ..., RUN ...
    docker-compose.yaml   one ``client`` service (more services: the task needs them)
    run-tests.sh          installs pytest (needs network) and runs tests/ with it
    tests/test_outputs.py the pytest verifier
    solution.sh / solution.yaml

Mapping: ``WORKDIR`` becomes the sandbox workspace, ``COPY``/``ADD`` of task files become
workspace files, ``ENV`` becomes environment, other ``RUN`` lines become setup commands —
except package installs, which need network and are skipped (listed in ``Task.notes``).
The verifier runs the ``test_*.py`` files with pytest when the sandbox's python3 has it, else
with :mod:`rollcage.envs._pytest_lite` (standard library only), scoring passed/total.
A task whose compose file declares services besides ``client`` raises :class:`TaskError`
("unsupported: needs services").
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollcage.envs.task import (
    TASK_ID_PATTERN,
    Task,
    TaskError,
    TaskSpec,
    Timeouts,
    format_validation_error,
    read_yaml,
)

TB_MARKERS = ("run-tests.sh", "docker-compose.yaml", "docker-compose.yml", "Dockerfile")
_INSTALL_RE = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf)\b.*\binstall\b|\bpip3?\b.*\binstall\b|\buv\b.*\b(pip|add|sync)\b|"
    r"\b(curl|wget)\b|\bnpm\b.*\binstall\b|\bapt(-get)?\s+update\b"
)

LITE_RUNNER = "_rollcage_pytest_lite.py"
VERIFY_COMMAND = (
    'if python3 -c "import pytest" >/dev/null 2>&1; then '
    'python3 -m pytest -q -rA -p no:cacheprovider "$TEST_DIR"; '
    f'else python3 "$TEST_DIR/{LITE_RUNNER}" "$TEST_DIR"; fi'
)


class TerminalBenchSpec(BaseModel):
    """The fields of a Terminal-Bench ``task.yaml`` that rollcage uses (others are kept, unused)."""

    model_config = ConfigDict(extra="allow")

    instruction: str = Field(min_length=1)
    difficulty: str = "medium"
    category: str = "terminal-bench"
    tags: list[str] = Field(default_factory=list)
    max_agent_timeout_sec: float = Field(default=900.0, gt=0)
    max_test_timeout_sec: float = Field(default=120.0, gt=0)
    parser_name: str = "pytest"


def is_terminal_bench_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in TB_MARKERS) and not (path / "tests" / "run.sh").is_file()


def _services(path: Path) -> list[str]:
    for name in ("docker-compose.yaml", "docker-compose.yml"):
        compose = path / name
        if compose.is_file():
            data = read_yaml(compose) or {}
            services = data.get("services") if isinstance(data, dict) else None
            if services is not None and not isinstance(services, dict):
                raise TaskError(f"invalid task file: {compose}: field 'services' must be a mapping")
            return list(services or {})
    return ["client"]


def _dockerfile(path: Path) -> tuple[str, dict[str, bytes], list[str], dict[str, str], list[str]]:
    """(workdir, files, setup, env, notes) from a Dockerfile's WORKDIR/COPY/ADD/RUN/ENV lines."""
    workdir, files, setup, env, notes = "/app", {}, [], {}, []
    dockerfile = path / "Dockerfile"
    if not dockerfile.is_file():
        return workdir, files, setup, env, notes
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "WORKDIR":
            workdir = rest if rest.startswith("/") else f"{workdir.rstrip('/')}/{rest}"
        elif instr == "ENV":
            if "=" in rest:
                for item in shlex.split(rest):
                    key, _, value = item.partition("=")
                    env[key] = value
            else:
                key, _, value = rest.partition(" ")
                env[key] = value.strip()
        elif instr in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            if len(parts) < 2:
                continue
            *sources, dest = parts
            for source in sources:
                _copy_into(path, source, dest, workdir, files, notes)
        elif instr == "RUN":
            if _INSTALL_RE.search(rest):
                notes.append(f"skipped (needs network): RUN {rest}")
            else:
                setup.append(rest)
    return workdir, files, setup, env, notes


def _copy_into(root: Path, source: str, dest: str, workdir: str, files: dict[str, bytes], notes: list[str]) -> None:
    src = (root / source).resolve()
    if not src.is_relative_to(root.resolve()) or not src.exists():
        notes.append(f"skipped COPY {source} {dest}: not a file of the task")
        return
    target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    if not target.startswith(workdir.rstrip("/") + "/") and target.rstrip("/") != workdir.rstrip("/"):
        notes.append(f"skipped COPY {source} {dest}: outside the workspace {workdir}")
        return
    rel_base = target[len(workdir.rstrip("/")) :].strip("/")
    if src.is_file():
        name = src.name if dest.endswith("/") or rel_base == "" else ""
        rel = "/".join(p for p in (rel_base, name) if p)
        files[rel] = src.read_bytes()
        return
    for item in sorted(src.rglob("*")):
        if item.is_file() and not item.is_symlink():
            rel = "/".join(p for p in (rel_base, item.relative_to(src).as_posix()) if p)
            files[rel] = item.read_bytes()


def _solution(path: Path) -> str | None:
    if (path / "solution.sh").is_file():
        return (path / "solution.sh").read_text(encoding="utf-8")
    if (path / "solution.yaml").is_file():
        data = read_yaml(path / "solution.yaml")
        if isinstance(data, list):
            commands = [str(item.get("command", "")) if isinstance(item, dict) else str(item) for item in data]
            return "\n".join(c for c in commands if c) + "\n"
    return None


def load(path: Path) -> Task:
    task_file = path / "task.yaml"
    data: Any = read_yaml(task_file)
    if isinstance(data, dict) and "instruction" not in data and isinstance(data.get("descriptions"), list):
        first = data["descriptions"][0] if data["descriptions"] else {}
        data = {**data, "instruction": first.get("description", "") if isinstance(first, dict) else ""}
    if not isinstance(data, dict):
        raise TaskError(f"invalid task file: {task_file}: expected a mapping at the top level")
    try:
        tb = TerminalBenchSpec.model_validate(data)
    except ValidationError as exc:
        raise TaskError(format_validation_error(exc, str(task_file))) from None

    task_id = re.sub(r"[^a-z0-9._-]+", "-", path.name.lower()).strip("-._") or "task"
    if not re.match(TASK_ID_PATTERN, task_id):
        raise TaskError(f"{path}: cannot make a task id from the directory name {path.name!r}")
    extra = [s for s in _services(path) if s != "client"]
    if extra:
        raise TaskError(
            f"unsupported: needs services: Terminal-Bench task {task_id} ({path}) declares docker services "
            f"{', '.join(extra)} besides 'client'; rollcage runs one sandbox per episode"
        )
    workdir, files, setup, env, notes = _dockerfile(path)
    tests_dir = path / "tests"
    has_pytests = tests_dir.is_dir() and (any(tests_dir.glob("test_*.py")) or any(tests_dir.glob("*_test.py")))
    if not has_pytests and not (path / "run-tests.sh").is_file():
        raise TaskError(f"Terminal-Bench task {task_id} ({path}): no tests/test_*.py and no run-tests.sh")

    extra_files: dict[str, bytes] = {}
    if has_pytests:
        verifier = VERIFY_COMMAND
        extra_files[LITE_RUNNER] = (Path(__file__).parent / "_pytest_lite.py").read_bytes()
    else:
        verifier = 'bash "$TEST_DIR/run-tests.sh"'
        extra_files["run-tests.sh"] = (path / "run-tests.sh").read_bytes()

    difficulty = tb.difficulty if tb.difficulty in ("easy", "medium", "hard") else "medium"
    try:
        spec = TaskSpec(
            id=task_id,
            instruction=tb.instruction,
            setup=setup,
            timeouts=Timeouts(
                command=min(tb.max_agent_timeout_sec, 600.0),
                episode=tb.max_agent_timeout_sec,
                verifier=tb.max_test_timeout_sec,
            ),
            max_steps=50,
            network=None,
            tags=[*tb.tags, "terminal-bench"],
            category=tb.category,
            difficulty=difficulty,
            env=env,
            workdir=workdir,
        )
    except ValidationError as exc:
        raise TaskError(format_validation_error(exc, str(task_file))) from None
    task = Task(
        spec=spec,
        path=path,
        tests_dir=tests_dir if tests_dir.is_dir() else None,
        verifier_command=verifier,
        solution=_solution(path),
        files=files,
        kind="terminal-bench",
        extra_verifier_files=extra_files,
        notes=notes,
    )
    return task
