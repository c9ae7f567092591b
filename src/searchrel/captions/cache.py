"""The caption cache: captions by (sha256 of the image bytes, captioner version).

A daily run captions only images it has not seen: the same bytes under a new URL are a hit,
changed bytes under the same URL are a miss. The cache is a directory of ``caption_cache``
Parquet files (a PVC on a cluster): each run adds one file per step, written to a temporary
name and renamed, so a killed run loses at most its last step and concurrent runs never clash.
When the files pile up, they are merged into one. Failures are not cached: a missing or
broken image is tried again on the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from searchrel.atomic_files import write_parquet_atomic
from searchrel.schema import CAPTION_CACHE
from searchrel.tables import validate

log = logging.getLogger(__name__)

FILE_GLOB = "captions-*.parquet"
COMPACT_AT = 32  # files in the directory that trigger a merge into one


class CaptionCache:
    """Captions already made, loaded at start; new ones written by ``flush``."""

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory).expanduser() if directory else None
        self.entries: dict[tuple[str, str], str] = {}
        self.pending: dict[tuple[str, str], str] = {}
        self.files: list[Path] = []
        self.quarantined = 0  # rows of cache files that broke the contract (ignored)
        self.unreadable = 0  # cache files that were not readable Parquet (ignored)
        self.written = 0
        if self.directory is not None and self.directory.is_dir():
            self._load()

    def _load(self) -> None:
        assert self.directory is not None
        for path in sorted(self.directory.glob(FILE_GLOB)):
            try:
                raw = pq.read_table(path)
                checked = validate(raw, "caption_cache")
            except (pa.ArrowInvalid, OSError, ValueError) as exc:
                log.warning("caption cache: skipping unreadable %s (%s)", path.name, exc)
                self.unreadable += 1
                continue
            self.quarantined += checked.quarantine.num_rows
            for row in checked.table.select(["image_sha256", "model", "caption"]).to_pylist():
                self.entries.setdefault((row["image_sha256"], row["model"]), row["caption"])
            self.files.append(path)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, sha256: str, model: str) -> str | None:
        return self.entries.get((sha256, model))

    def put(self, sha256: str, model: str, caption: str) -> None:
        self.entries[(sha256, model)] = caption
        self.pending[(sha256, model)] = caption

    def flush(self) -> int:
        """Write the captions added since the last flush; returns how many."""
        if self.directory is None or not self.pending:
            self.pending.clear()
            return 0
        count = len(self.pending)
        self.files.append(self._write(self.pending))
        self.written += count
        self.pending = {}
        if len(self.files) >= COMPACT_AT:
            self.compact()
        return count

    def compact(self) -> None:
        """Merge every file this cache read or wrote into one (others' new files untouched)."""
        if self.directory is None or len(self.files) < 2:
            return
        merged = self._write(self.entries)
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files = [merged]

    def _write(self, entries: dict[tuple[str, str], str]) -> Path:
        assert self.directory is not None
        now = dt.datetime.now(dt.UTC)
        table = pa.table(
            {
                "image_sha256": [k[0] for k in entries],
                "model": [k[1] for k in entries],
                "caption": list(entries.values()),
                "created": pa.array([now] * len(entries), pa.timestamp("ms", tz="UTC")),
            },
            schema=CAPTION_CACHE,
        )
        checked = validate(table, "caption_cache")
        if checked.quarantine.num_rows:  # our own rows: a bad one here is a bug
            raise ValueError(f"caption_cache: refusing to write bad rows: {checked.reasons}")
        stamp = now.strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"captions-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        write_parquet_atomic(checked.table, path)
        return path

    def summary(self) -> dict[str, Any]:
        return {
            "dir": str(self.directory) if self.directory else None,
            "entries": len(self.entries),
            "written": self.written,
            "files": len(self.files),
            "quarantined_rows": self.quarantined,
            "unreadable_files": self.unreadable,
        }
