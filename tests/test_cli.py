"""A user's mistake gets one clear line and exit code 2, not a traceback."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "module", ["searchrel.teacher.train", "searchrel.features.build", "searchrel.serving.server"]
)
def test_every_stage_has_a_python_m_entry_with_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--" in result.stdout
