"""Write a file so that a reader sees the old one or the whole new one, never half of it.

Every step's outputs (tables, shards, reports, caches, the drift state) are read by other
processes, possibly while being written, and a pod can be killed at any moment; one writer for
all of them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"  # in the names of temporaries, so a sweep can find what a kill left behind


def _fsync_replace(tmp: Path, target: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)  # atomic on POSIX: readers see the old file or the new one


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """``write`` fills a temporary file beside ``path`` (same directory: same file system,
    so the rename is atomic); it is fsynced and renamed into place. A failure on the way
    removes the temporary and leaves ``path`` as it was; a kill leaves a hidden temporary
    (``.NAME.tmp-PID``) that ``remove_temporaries`` deletes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        _fsync_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_parquet_atomic(table: pa.Table, path: Path) -> str:
    """Write a Parquet file via a temporary file and a rename; returns the file's sha256."""
    digest = ""

    def write(tmp: Path) -> None:
        nonlocal digest
        pq.write_table(table, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()

    write_atomic(path, write)
    return digest


def copy_atomic(src: Path, path: Path) -> Path:
    """Copy ``src`` to ``path`` (contents and times) as the writers above write: a reader, or
    a run after a crash, sees the old file or the whole new one, never part of it."""

    def write(tmp: Path) -> None:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)

    return write_atomic(path, write)


def remove_temporaries(directory: Path) -> int:
    """Delete the temporaries a killed writer left in ``directory``; returns how many."""
    if not directory.exists():
        return 0
    stale = [p for p in directory.glob(f".*{TMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
