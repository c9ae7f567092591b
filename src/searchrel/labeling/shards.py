"""Shards of a labeling run: deterministic assignment, atomic files, a per-shard manifest.

A date's pairs are split by a hash of (query, locale, item id), so every run (and every
machine of a fan-out) puts a pair in the same shard. A shard's labels are written to a
temporary file and renamed into place; only then is its record (``shard-….json``) written,
also by rename. A run killed at any moment therefore leaves each shard either recorded and
whole, or unrecorded (and redone from scratch on the next run): never half-written, never
counted twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from searchrel.atomic_files import write_text_atomic

MANIFEST = "_manifest.json"


def shard_of(query: str, locale: str, item_id: str, n_shards: int) -> int:
    """The pair's shard: stable across runs, processes and machines (no Python hash seed)."""
    key = f"{query}\x1f{locale}\x1f{item_id}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % n_shards


def shard_stem(shard: int, n_shards: int) -> str:
    return f"shard-{shard:05d}-of-{n_shards:05d}"


def partition_dir(out_dir: Path, date: dt.date) -> Path:
    return out_dir / f"date={date.isoformat()}"


def input_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ShardRecord:
    """What a finished shard holds; written last, so its presence means the shard is whole."""

    shard: int
    n_shards: int
    date: str
    teacher_version: str
    rows: int  # labeled rows in the data file
    failed: int  # pairs that could not be labeled (retried on the next run)
    labeled_now: int  # rows the teacher labeled in this run
    reused: int  # rows copied from earlier labels with the same input text and teacher
    sha256: str  # of the data file
    seconds: float

    @property
    def complete(self) -> bool:
        return self.failed == 0


def record_path(pdir: Path, shard: int, n_shards: int) -> Path:
    return pdir / f"{shard_stem(shard, n_shards)}.json"


def data_path(pdir: Path, shard: int, n_shards: int) -> Path:
    return pdir / f"{shard_stem(shard, n_shards)}.parquet"


def failures_path(pdir: Path, shard: int, n_shards: int) -> Path:
    return pdir / f"{shard_stem(shard, n_shards)}.failed.parquet"


def read_record(pdir: Path, shard: int, n_shards: int) -> ShardRecord | None:
    path = record_path(pdir, shard, n_shards)
    if not path.exists():
        return None
    record = ShardRecord(**json.loads(path.read_text(encoding="utf-8")))
    data = data_path(pdir, shard, n_shards)
    if not data.exists() or hashlib.sha256(data.read_bytes()).hexdigest() != record.sha256:
        return None  # the data file was lost or altered after the record: redo the shard
    return record


def write_record(pdir: Path, record: ShardRecord) -> None:
    write_json(record_path(pdir, record.shard, record.n_shards), asdict(record))


def other_shard_counts(pdir: Path, n_shards: int) -> set[int]:
    """Shard counts of earlier runs in this partition (a different count cannot be resumed)."""
    counts = set()
    for path in pdir.glob("shard-*-of-*.json"):
        counts.add(int(path.stem.rsplit("-of-", 1)[1]))
    return counts - {n_shards}


def write_manifest(pdir: Path, records: list[ShardRecord]) -> dict[str, Any]:
    """The partition's manifest: every shard's record and whether all are complete."""
    manifest = {
        "date": records[0].date if records else None,
        "n_shards": records[0].n_shards if records else 0,
        "teacher_versions": sorted({r.teacher_version for r in records}),
        "rows": sum(r.rows for r in records),
        "failed": sum(r.failed for r in records),
        "complete": bool(records) and all(r.complete for r in records),
        "shards": [asdict(r) for r in sorted(records, key=lambda r: r.shard)],
    }
    write_json(pdir / MANIFEST, manifest)
    return manifest


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2))
