"""A user's mistake gets one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchrel", *args], capture_output=True, text=True, timeout=120
    )


def test_a_missing_input_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "label",
        "--teacher", str(tmp_path),
        "--items", str(tmp_path / "items.parquet"),
        "--impressions", str(tmp_path / "impressions.parquet"),
        "--out", str(tmp_path / "labels.parquet"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_a_bad_config_key_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("teacher:\n  no_such_key: 1\n")
    result = run_cli(
        "features", "build",
        "--items", "x", "--judgments", "y", "--out", str(tmp_path), "--config", str(cfg),
    )  # fmt: skip
    assert result.returncode == 2
    assert "teacher.no_such_key" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_table_with_wrong_columns_names_them(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"query": ["a"], "item": ["b"]}), tmp_path / "judgments.parquet")
    pq.write_table(pa.table({"item_id": ["b"]}), tmp_path / "items.parquet")
    result = run_cli(
        "teacher", "train",
        "--items", str(tmp_path / "items.parquet"),
        "--judgments", str(tmp_path / "judgments.parquet"),
        "--out", str(tmp_path / "teacher"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "missing column(s)" in result.stderr
    assert "Traceback" not in result.stderr


def component_commands() -> list[tuple[str, ...]]:
    """The `searchrel` commands the KFP components run: the leading words of every
    ``run_cli(...)`` and ``cli_command(...)`` call in searchrel.components."""
    import searchrel.components

    commands = set()
    for path in Path(searchrel.components.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "run_cli",
                "cli_command",
            ):
                words = []
                for arg in node.args:
                    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                        break
                    if arg.value.startswith("-"):
                        break
                    words.append(arg.value)
                if words:
                    commands.add(tuple(words))
    return sorted(commands)


def test_the_components_run_the_stage_commands_a_user_runs() -> None:
    assert {" ".join(c) for c in component_commands()} == {
        "data ingest", "caption", "teacher train", "teacher evaluate", "label", "label-collect",
        "features build", "student train", "student evaluate", "student gate", "drift", "deploy",
    }  # fmt: skip


@pytest.mark.parametrize("command", component_commands(), ids=" ".join)
def test_every_command_a_component_runs_is_a_searchrel_command(command: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from searchrel.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], prog_name="searchrel")
    assert result.exit_code == 0, result.output
    assert f"searchrel {' '.join(command)} [OPTIONS]" in result.output
