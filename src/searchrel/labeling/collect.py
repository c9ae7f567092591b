"""Gather the shards of a fanned-out labeling run (one KFP task per shard) into one table.

Each shard task writes its own directory; this copies every recorded shard into one
``date=/shard-`` tree, checks each file against its record's sha256, and writes each date's
manifest. Every copy is atomic (a temporary in the target directory, fsync, rename), so a
collect killed mid-way never leaves part of a file under a real name. A missing or
unrecorded shard is an error: a partial day never passes as whole.
Only a whole collection writes the freshness metrics (``labels.prom``, see
``searchrel.labeling.prometheus``), so the last success's timestamp is what the alert ages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchrel.atomic_files import copy_atomic, remove_temporaries
from searchrel.labeling import shards as sh
from searchrel.labeling.prometheus import export_label_metrics
from searchrel.tables import ContractError


def collect_shards(
    shard_dirs: Sequence[Path], out_dir: Path, pushgateway: str = ""
) -> dict[str, Any]:
    by_date: dict[str, dict[int, sh.ShardRecord]] = {}
    n_by_date: dict[str, int] = {}
    cleaned: set[Path] = set()
    for src in shard_dirs:
        for record_file in sorted(Path(src).glob("date=*/shard-*-of-*.json")):
            pdir = record_file.parent
            k, n = _shard_numbers(record_file)
            record = sh.read_record(pdir, k, n)
            if record is None:
                raise ContractError(f"{record_file}: its data file is missing or altered")
            if n_by_date.setdefault(record.date, n) != n:
                raise ContractError(f"{record.date}: shards of {n} and {n_by_date[record.date]}")
            target = out_dir / pdir.name
            if target not in cleaned:  # what a collect killed mid-copy left behind
                remove_temporaries(target)
                cleaned.add(target)
            # Atomic copies, the record last: a crash leaves no partial file under a real name.
            for path in (sh.data_path(pdir, k, n), sh.failures_path(pdir, k, n), record_file):
                if path.exists():
                    copy_atomic(path, target / path.name)
            by_date.setdefault(record.date, {})[k] = record
    if not by_date:
        raise ContractError("no labeled shards in the given directories")
    dates = {}
    for date, records in sorted(by_date.items()):
        n = n_by_date[date]
        missing = sorted(set(range(n)) - set(records))
        if missing:
            raise ContractError(f"{date}: shards {missing} of {n} were never labeled")
        manifest = sh.write_manifest(out_dir / f"date={date}", list(records.values()))
        dates[date] = {k: manifest[k] for k in ("rows", "failed", "complete", "n_shards")}
    summary: dict[str, Any] = {"stage": "label-collect", "dates": dates}
    summary["prometheus"] = export_label_metrics(summary, out_dir, pushgateway)
    return summary


def _shard_numbers(record_file: Path) -> tuple[int, int]:
    left, right = record_file.stem.removeprefix("shard-").split("-of-")
    return int(left), int(right)
