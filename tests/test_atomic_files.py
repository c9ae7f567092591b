"""One writer for every file another process may read: whole or absent, never half."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchrel.atomic_files import TMP_MARK, remove_temporaries, write_atomic, write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_text_atomic(target, "old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half_then_crash)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_write_creates_missing_directories_and_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_the_sweep_removes_only_what_a_killed_writer_left(tmp_path: Path) -> None:
    (tmp_path / f".labels.parquet{TMP_MARK}4242").write_bytes(b"half")
    (tmp_path / "labels.parquet").write_bytes(b"whole")
    (tmp_path / ".hidden-but-ours").write_bytes(b"keep")
    assert remove_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-but-ours", "labels.parquet"]
    assert remove_temporaries(tmp_path / "absent") == 0
