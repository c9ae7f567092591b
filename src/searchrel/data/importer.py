"""`searchrel data import`: your own items, judgments and impressions, from CSV, Parquet or
JSONL files with your column names, into the contract tables the pipeline reads.

    searchrel data import --items pins.csv --judgments ratings.jsonl \\
        --impressions log.parquet --out data/mine \\
        --map query=search_term --map item_id=pin_id --map judgments.label=rating

``--map CONTRACT=SOURCE`` renames the source column SOURCE to the contract column CONTRACT in
every table that has CONTRACT; ``--map TABLE.CONTRACT=SOURCE`` in that table only. Columns
the contract does not know are left out (and listed in the summary); nullable contract columns
a file does not have are read as nulls (and counted). A row that cannot be read (a JSON line
that does not parse, a CSV record with more fields than the header) or that breaks the
contract is quarantined with its reason and its record number in the file — never dropped.

The output directory holds ``items.parquet``, ``judgments.parquet`` and ``impressions.parquet``
(what ``searchrel data ingest --source DIR`` and the pipelines' ``source`` parameter read),
``<table>.quarantine.parquet`` where rows were quarantined, and ``import_summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrel.schema import SPECS
from searchrel.tables import QUARANTINE_SCHEMA, ContractError, validate, write_table

TABLES = ("items", "judgments", "impressions")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl"}  # fmt: skip
SUMMARY_FILE = "import_summary.json"


@dataclass(frozen=True)
class Mapping:
    """Which source column becomes which contract column, per table."""

    renames: dict[str, dict[str, str]]  # table -> {source column: contract column}

    @classmethod
    def parse(cls, specs: list[str]) -> Mapping:
        renames: dict[str, dict[str, str]] = {t: {} for t in TABLES}
        for spec in specs:
            target, sep, source = spec.partition("=")
            target, source = target.strip(), source.strip()
            if not sep or not target or not source:
                raise ContractError(f"--map {spec!r}: use CONTRACT=SOURCE or TABLE.CONTRACT=SOURCE")
            table, dot, column = target.rpartition(".")
            tables = [table] if dot else [t for t in TABLES if column in SPECS[t].schema.names]
            if dot and table not in TABLES:
                raise ContractError(
                    f"--map {spec!r}: no table {table!r} (one of {', '.join(TABLES)})"
                )
            if not tables or column not in SPECS[tables[0]].schema.names:
                where = table or "any table"
                raise ContractError(f"--map {spec!r}: {column!r} is not a column of {where}")
            for t in tables:
                renames[t][source] = column
        return cls(renames)


class _Read:
    """A file's records as a frame, plus the records that could not be read at all."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.record: list[int] = []  # each row's record number in the file (0-based)
        self.unreadable: list[tuple[int, str, str]] = []  # (record, reason, raw text)


def _read_csv(path: Path) -> _Read:
    out = _Read()
    # Undecodable bytes become U+FFFD, which the contract quarantines as undecodable_text.
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ContractError(f"{path}: empty CSV file (no header)")
    for n, fields in enumerate(reader):
        if len(fields) > len(header):
            out.unreadable.append((n, "csv_extra_fields", ",".join(fields)))
            continue
        cells = {h: (f if f != "" else None) for h, f in zip(header, fields, strict=False)}
        out.rows.append(cells)
        out.record.append(n)
    return out


def _read_jsonl(path: Path) -> _Read:
    out = _Read()
    text = path.read_bytes().decode("utf-8", errors="replace")
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            out.unreadable.append((n, "bad_json", line))
            continue
        if not isinstance(row, dict):
            out.unreadable.append((n, "bad_json", line))
            continue
        out.rows.append(row)
        out.record.append(n)
    return out


def _read_parquet(path: Path) -> _Read:
    out = _Read()
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{path} is not a readable Parquet file ({exc})") from exc
    out.rows = table.to_pylist()
    out.record = list(range(len(out.rows)))
    return out


def read_source(path: Path) -> _Read:
    if not path.is_file():
        raise ContractError(f"no such file {path}")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ContractError(f"{path}: unknown format (use {', '.join(sorted(FORMATS))})")
    if kind == "csv":
        return _read_csv(path)
    return _read_jsonl(path) if kind == "jsonl" else _read_parquet(path)


def _text_list(value: Any, list_sep: str) -> Any:
    """A list column's cell from text: a JSON array, or items joined by ``list_sep``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return value  # left as text: the contract quarantines it as bad_type
        return parsed if isinstance(parsed, list) else value
    if list_sep:
        return [part.strip() for part in text.split(list_sep) if part.strip()]
    return value


def import_table(
    path: Path, kind: str, mapping: Mapping, out_dir: Path, levels: int, list_sep: str = ""
) -> dict[str, Any]:
    """One source file into ``out_dir/<kind>.parquet``; returns its part of the summary."""
    spec = SPECS[kind]
    read = read_source(path)
    renames = mapping.renames[kind]
    columns: list[str] = []
    for row in read.rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    missing_sources = sorted(s for s in renames if s not in columns)
    if read.rows and missing_sources:
        raise ContractError(f"{kind}: {path} has no column(s) {', '.join(missing_sources)} "
                            f"(named by --map)")  # fmt: skip
    contract = set(spec.schema.names)
    renamed = [renames.get(c, c) for c in columns]
    ignored = [c for c, r in zip(columns, renamed, strict=True) if r not in contract]
    kept = {c: r for c, r in zip(columns, renamed, strict=True) if r in contract}
    duplicated = [r for r, n in Counter(kept.values()).items() if n > 1]
    if duplicated:
        raise ContractError(f"{kind}: two source columns become {', '.join(duplicated)}")
    list_columns = {f.name for f in spec.schema if pa.types.is_list(f.type)}
    records = []
    for row in read.rows:
        record = {}
        for source, target in kept.items():
            value = row.get(source)
            record[target] = _text_list(value, list_sep) if target in list_columns else value
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=list(kept.values()))
    result = validate(frame.astype(object), kind, levels)
    write_table(result.table, out_dir / f"{kind}.parquet", kind, levels)
    quarantine = _quarantine(kind, read, result.quarantine)
    quarantine_path = out_dir / f"{kind}.quarantine.parquet"
    quarantine_path.unlink(missing_ok=True)  # from an earlier import into the same directory
    if quarantine.num_rows:
        pq.write_table(quarantine, quarantine_path)
    reasons = Counter(quarantine.column("reason").to_pylist())
    return {
        "source": str(path),
        "records": len(read.rows) + len(read.unreadable),
        "rows_out": result.rows_out,
        "quarantined": quarantine.num_rows,
        "reasons": dict(sorted(reasons.items())),
        "mapped": {s: t for s, t in kept.items() if s != t},
        "absent_columns_read_as_null": result.absent_columns,
        "ignored_columns": ignored,
    }


def _quarantine(kind: str, read: _Read, checked: pa.Table) -> pa.Table:
    """Unreadable records and contract rejects, each under its record number in the file."""
    rows: list[tuple[int, str, str]] = [(n, reason, json.dumps(raw))
                                        for n, reason, raw in read.unreadable]  # fmt: skip
    for q in checked.to_pylist():
        rows.append((read.record[q["row_index"]], q["reason"], q["row_json"]))
    rows.sort()
    return pa.table(
        {
            "table": [kind] * len(rows),
            "row_index": [r[0] for r in rows],
            "reason": [r[1] for r in rows],
            "row_json": [r[2] for r in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


def import_data(
    sources: dict[str, Path],
    out_dir: Path,
    maps: list[str],
    levels: int,
    list_sep: str = "",
) -> dict[str, Any]:
    """Import each given table (items, judgments, impressions) into ``out_dir``."""
    if not sources:
        raise ContractError("nothing to import: give --items, --judgments and/or --impressions")
    mapping = Mapping.parse(maps)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"stage": "import", "out": str(out_dir), "levels": levels}
    for kind in TABLES:
        if kind in sources:
            summary[kind] = import_table(sources[kind], kind, mapping, out_dir, levels, list_sep)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
