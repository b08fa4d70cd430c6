"""``rollcage rules validate`` and ``rollcage rules list``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from rollcage.cli.main import app

runner = CliRunner()

GOOD = """\
- rule: Cryptominer launched
  enabled: false
- rule: My rule
  desc: mine
  condition: cmd.name = frobnicate
  priority: WARNING
  category: policy_violation
"""

BAD = """\
- rule: Broken field
  condition: proc.nmae = x
  priority: WARNING
  category: tunnel
- rule: Broken category
  condition: proc.name = x
  priority: WARNING
  category: bitcoin
- macro: loop_a
  condition: loop_b
- macro: loop_b
  condition: loop_a
"""


def test_validate_ok(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = runner.invoke(app, ["rules", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_validate_reports_each_error_with_file_line_and_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = runner.invoke(app, ["rules", "validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{path}:2: rule 'Broken field': unknown field 'proc.nmae'"
    assert lines[1].startswith(f"{path}:8: rule 'Broken category': bad category 'bitcoin'")
    assert lines[2] == f"{path}:10: macro 'loop_a': macro recursion: loop_a -> loop_b -> loop_a"
    assert len(lines) == 4


def test_validate_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("- rule: x\n  condition: [\n")
    result = runner.invoke(app, ["rules", "validate", str(path), str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}:0: cannot read" in result.output
    assert f"{path}:3: YAML syntax error" in result.output


def test_list_json_includes_defaults_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = runner.invoke(app, ["rules", "list", "--json", "--rules", str(path)])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
    assert rows["Cryptominer launched"]["enabled"] is False
    assert rows["My rule"] == {
        "name": "My rule",
        "category": "policy_violation",
        "severity": "medium",
        "priority": "Warning",
        "action": "alert",
        "enabled": True,
        "mitre": [],
        "source": f"{path}:3",
    }
    assert rows["SSH port forwarding"]["source"].startswith("default/tunnel.yaml:")
    assert len(rows) > 80


def test_list_table_and_bad_extra(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rules", "list"])
    assert result.exit_code == 0 and "Cryptominer launched" in result.output and "cryptomining" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = runner.invoke(app, ["rules", "list", "--rules", str(bad)])
    assert result.exit_code == 1


def test_cli_as_a_user_runs_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    r = subprocess.run(
        [sys.executable, "-m", "rollcage.cli.main", "rules", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr and f"{path}:2: rule 'Broken field'" in r.stdout
