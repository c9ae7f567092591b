"""label-collect copies each shard atomically: a collect that dies mid-copy (a full disk, a
kill) never leaves part of a file under a shard's name, and the next collect completes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pytest

from searchrel.atomic_files import TMP_MARK, write_parquet_atomic
from searchrel.labeling import shards as sh
from searchrel.labeling.collect import collect_shards

DAY = "2026-11-01"


def labeled_task(task_dir: Path, shard: int, n: int, rows: int, offset: int) -> None:
    """A finished shard as a labeling task leaves it (collect checks records, not rows)."""
    pdir = task_dir / f"date={DAY}"
    table = pa.table({"x": list(range(offset, offset + rows))})
    digest = write_parquet_atomic(table, sh.data_path(pdir, shard, n))
    sh.write_record(pdir, sh.ShardRecord(shard, n, DAY, "teacher-x", rows, 0, rows, 0,
                                         digest, 0.1))  # fmt: skip


def test_a_copy_that_fails_half_way_leaves_the_old_file_whole_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = [tmp_path / "day1-task0", tmp_path / "day1-task1"]
    for k, task in enumerate(tasks):
        labeled_task(task, k, 2, rows=5000, offset=0)
    out = tmp_path / "teacher_labels"
    collect_shards(tasks, out)
    before = {p: p.read_bytes() for p in (out / f"date={DAY}").iterdir()}

    # A rerun with new shard files; the disk fills up half-way through the first copy.
    rerun = [tmp_path / "day1-again-task0", tmp_path / "day1-again-task1"]
    for k, task in enumerate(rerun):
        labeled_task(task, k, 2, rows=6000, offset=1)
    real_sendfile = os.sendfile

    def half_then_disk_full(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        real_sendfile(out_fd, in_fd, offset, os.fstat(in_fd).st_size // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", half_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        collect_shards(rerun, out)
    after = {p: p.read_bytes() for p in (out / f"date={DAY}").iterdir()}
    assert after == before  # every file as the first collect wrote it: none half-copied
    assert not list(out.rglob(f"*{TMP_MARK}*"))

    monkeypatch.setattr(os, "sendfile", real_sendfile)
    summary = collect_shards(rerun, out)
    assert summary["dates"][DAY] == {"rows": 12000, "failed": 0, "complete": True, "n_shards": 2}
    for k, task in enumerate(rerun):
        name = sh.data_path(out / f"date={DAY}", k, 2).name
        assert (out / f"date={DAY}" / name).read_bytes() == (
            task / f"date={DAY}" / name
        ).read_bytes()


def test_a_collect_killed_mid_copy_leaves_a_temporary_the_next_collect_removes(
    tmp_path: Path,
) -> None:
    task = tmp_path / "task0"
    labeled_task(task, 0, 1, rows=10, offset=0)
    out = tmp_path / "teacher_labels"
    stale = out / f"date={DAY}" / f".shard-00000-of-00001.parquet{TMP_MARK}4242"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a copy")  # what kill -9 during a copy leaves
    assert collect_shards([task], out)["dates"][DAY]["complete"]
    assert not stale.exists()
