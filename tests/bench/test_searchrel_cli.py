"""A searchrel command run as a subprocess: its summary is the JSON it prints last."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.searchrel_cli import last_json, run_cli


def test_the_summary_a_searchrel_command_prints_is_found_after_its_log_lines() -> None:
    out = 'note: {"not": "this"}\n{\n  "stage": "label",\n  "nested": {\n    "a": 1\n  }\n}\n'
    assert last_json(out) == {"stage": "label", "nested": {"a": 1}}
    with pytest.raises(ValueError):
        last_json("no summary\n")


def test_a_real_command_runs_with_this_checkouts_code_and_keeps_its_log(tmp_path: Path) -> None:
    summary, wall = run_cli(["data", "sample", "--out", str(tmp_path / "sample")], tmp_path / "log")
    assert summary["tables"]["judgments"] > 0 and wall > 0
    assert (tmp_path / "sample" / "impressions.parquet").exists()
    assert "data sample" in (tmp_path / "log").read_text()


def test_a_failing_command_names_its_error_and_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"exit 2\): .*(log: .*log)"):
        run_cli(
            ["label", "--items", str(tmp_path / "none.parquet"), "--impressions",
             str(tmp_path / "none.parquet"), "--out", str(tmp_path / "out"), "--teacher",
             str(tmp_path / "teacher")],
            tmp_path / "log",
        )  # fmt: skip
