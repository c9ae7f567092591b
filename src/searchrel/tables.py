"""Reading and writing contract tables: validation at every boundary, quarantine with reasons.

A table whose columns are wrong fails at once with one message naming them. Rows that break
the contract are moved to a quarantine table (the row as JSON and the reason) and counted,
never silently dropped.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrel.atomic_files import write_atomic
from searchrel.schema import SPECS, TableSpec

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("row_index", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("row_json", pa.string(), nullable=False),
    ]
)
PROBS_TOLERANCE = 1e-3
FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_RANGES = {bits: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)}


class ContractError(ValueError):
    """A table that cannot be read or written under the contract; one line for the user."""


@dataclass
class Validated:
    """A validated table, its quarantined rows and the count of each reason."""

    table: pa.Table
    quarantine: pa.Table
    rows_in: int
    reasons: dict[str, int] = field(default_factory=dict)
    absent_columns: list[str] = field(default_factory=list)  # nullable, absent: read as nulls

    @property
    def rows_out(self) -> int:
        return self.table.num_rows

    def summary(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "quarantined": self.quarantine.num_rows,
            "reasons": dict(sorted(self.reasons.items())),
            "absent_columns_read_as_null": list(self.absent_columns),
        }


def _to_frame(data: pa.Table | pd.DataFrame) -> pd.DataFrame:
    if isinstance(data, pa.Table):
        return data.to_pandas(types_mapper=None)
    return data.reset_index(drop=True)


def absent_nullable(df: pd.DataFrame, spec: TableSpec) -> list[str]:
    """The contract's nullable columns that ``df`` lacks: they are read as nulls."""
    return [f.name for f in spec.schema if f.nullable and f.name not in df.columns]


def _check_columns(df: pd.DataFrame, spec: TableSpec) -> None:
    expected = list(spec.schema.names)
    missing = [c for c in expected if c not in df.columns]
    unexpected = [c for c in df.columns if c not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected column(s) {', '.join(map(str, unexpected))}")
        raise ContractError(f"{spec.name}: " + "; ".join(parts))


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _bad_text(value: str) -> bool:
    """Text that was not decodable: replacement characters or lone surrogates."""
    if "\ufffd" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _coerce_cell(value: Any, type_: pa.DataType) -> tuple[Any, str | None]:
    """Return the value as the column type wants it, or a reason it cannot be."""
    if _is_null(value):
        return None, None
    if pa.types.is_string(type_):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return None, "undecodable_text"
        if not isinstance(value, str):
            return None, "bad_type"
        return value, ("undecodable_text" if _bad_text(value) else None)
    if pa.types.is_integer(type_):
        if isinstance(value, bool):
            return None, "bad_type"
        whole_float = isinstance(value, float | np.floating) and float(value).is_integer()
        if isinstance(value, int | np.integer) or whole_float:
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value.strip())
        else:
            return None, "bad_type"
        low, high = _INT_RANGES[type_.bit_width]
        return (number, None) if low <= number <= high else (None, "out_of_range")
    if pa.types.is_floating(type_):
        if isinstance(value, bool):
            return None, "bad_type"
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None, "bad_type"
        limit = FLOAT32_MAX if pa.types.is_float32(type_) else math.inf
        return (out, None) if math.isfinite(out) and abs(out) <= limit else (None, "bad_type")
    if pa.types.is_date(type_) or pa.types.is_timestamp(type_):
        # Numbers are rejected: epoch seconds and nanoseconds cannot be told apart.
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return None, "bad_type"
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError, OverflowError):
            return None, "bad_type"
        if ts is pd.NaT:
            return None, "bad_type"
        if pa.types.is_date(type_):
            return ts.date(), None
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")), None
    if pa.types.is_list(type_):
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            return None, "bad_type"
        inner = type_.value_type
        out_list = []
        for item in value:
            cell, reason = _coerce_cell(item, inner)
            if reason or cell is None:
                return None, reason or "bad_type"
            out_list.append(cell)
        return out_list, None
    raise TypeError(f"no coercion for {type_}")  # a schema bug, not a data problem


def _row_json(row: dict[str, Any]) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, bytes):
            return obj.decode("utf-8", errors="backslashreplace")
        return str(obj)

    # ASCII escapes: a quarantined row may hold lone surrogates that UTF-8 cannot encode.
    return json.dumps(row, default=default, ensure_ascii=True)


def validate(data: pa.Table | pd.DataFrame, kind: str, levels: int | None = None) -> Validated:
    """Check a table against its contract; bad rows go to quarantine with the first reason."""
    spec = SPECS[kind]
    if (spec.label_column or spec.probs_column) and levels is None:
        raise ValueError(f"{kind}: the number of levels K is needed to validate labels")
    df = _to_frame(data)
    absent = absent_nullable(df, spec)
    if absent:  # optional fields a source does not have (items with only a title, say)
        df = df.assign(**{name: None for name in absent})
    _check_columns(df, spec)
    rows_in = len(df)
    reasons: list[str | None] = [None] * rows_in
    columns: dict[str, list[Any]] = {}
    for fld in spec.schema:
        values = df[fld.name].tolist()
        out = []
        for i, value in enumerate(values):
            cell, reason = _coerce_cell(value, fld.type)
            if reason and reasons[i] is None:
                reasons[i] = reason if reason == "undecodable_text" else f"{reason}:{fld.name}"
            if cell is None and not reason and not fld.nullable and reasons[i] is None:
                reasons[i] = f"missing:{fld.name}"
            out.append(cell)
        columns[fld.name] = out
    for name in spec.non_empty_text:
        for i, value in enumerate(columns[name]):
            if reasons[i] is None and isinstance(value, str) and not value.strip():
                reasons[i] = f"empty:{name}"
    for name in spec.non_negative:
        for i, value in enumerate(columns[name]):
            if reasons[i] is None and value is not None and value < 0:
                reasons[i] = f"negative:{name}"
    if spec.label_column:
        for i, value in enumerate(columns[spec.label_column]):
            if reasons[i] is None and levels is not None and not 1 <= value <= levels:
                reasons[i] = "label_out_of_range"
    if spec.probs_column:
        for i, value in enumerate(columns[spec.probs_column]):
            if reasons[i] is None and levels is not None and not _valid_probs(value, levels):
                reasons[i] = "bad_probabilities"
    if spec.key:
        seen: set[tuple[Any, ...]] = set()
        for i in range(rows_in):
            if reasons[i] is not None:
                continue
            key = tuple(columns[k][i] for k in spec.key)
            if key in seen:
                reasons[i] = "duplicate_key"
            seen.add(key)

    good = [i for i, r in enumerate(reasons) if r is None]
    table = pa.table(
        {
            name: pa.array([columns[name][i] for i in good], type=spec.schema.field(name).type)
            for name in spec.schema.names
        },
        schema=spec.schema,
    )
    bad = [i for i, r in enumerate(reasons) if r is not None]
    raw_rows = df.to_dict(orient="records") if bad else []
    quarantine = pa.table(
        {
            "table": [kind] * len(bad),
            "row_index": [i for i in bad],
            "reason": [reasons[i] for i in bad],
            "row_json": [_row_json(raw_rows[i]) for i in bad],
        },
        schema=QUARANTINE_SCHEMA,
    )
    counts = Counter(str(reasons[i]) for i in bad)
    return Validated(
        table=table,
        quarantine=quarantine,
        rows_in=rows_in,
        reasons=dict(counts),
        absent_columns=absent,
    )


def _valid_probs(value: list[float], levels: int) -> bool:
    if len(value) != levels:
        return False
    if any(p < -PROBS_TOLERANCE or p > 1 + PROBS_TOLERANCE for p in value):
        return False
    return abs(sum(value) - 1.0) <= PROBS_TOLERANCE


def quarantine_path(path: Path) -> Path:
    stem = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.name
    return path.with_name(f"{stem}.quarantine.parquet")


def write_table(
    data: pa.Table | pd.DataFrame, path: str | Path, kind: str, levels: int | None = None
) -> pa.Table:
    """Write a table we produced; a row that breaks the contract here is a bug, so it raises."""
    result = validate(data, kind, levels)
    if result.quarantine.num_rows:
        raise ContractError(
            f"{kind}: refusing to write {result.quarantine.num_rows} bad row(s): {result.reasons}"
        )
    # atomic: a reader never sees half a file
    write_atomic(Path(path), lambda tmp: pq.write_table(result.table, tmp))
    return result.table


def read_table(
    path: str | Path,
    kind: str,
    levels: int | None = None,
    quarantine_to: str | Path | None = None,
) -> Validated:
    """Read a Parquet table, validate it, and write quarantined rows beside it (or where told).

    ``path`` may be a directory of partitions (``date=.../shard-....parquet``): every data file
    under it is read, side files (quarantine, failures, temporaries) are not.
    """
    src = Path(path)
    if not src.exists():
        raise ContractError(f"{kind}: no such file {src}")
    files = partition_files(src) if src.is_dir() else [src]
    try:
        parts = [pq.read_table(f) for f in files]
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{kind}: {src} is not a readable Parquet file ({exc})") from exc
    if not parts:
        raise ContractError(f"{kind}: no Parquet files under {src}")
    raw = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
    result = validate(raw, kind, levels)
    if result.quarantine.num_rows:
        default = src / "quarantine.parquet" if src.is_dir() else quarantine_path(src)
        target = Path(quarantine_to) if quarantine_to else default
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result.quarantine, target)
    return result


SIDE_FILE_SUFFIXES = ("quarantine.parquet", ".failed.parquet")  # x.quarantine and bare


def partition_files(directory: Path) -> list[Path]:
    """The data files of a partitioned table, in a stable order."""
    return sorted(
        f
        for f in directory.rglob("*.parquet")
        if not f.name.startswith((".", "_")) and not f.name.endswith(SIDE_FILE_SUFFIXES)
    )


def write_quarantine(quarantine: pa.Table, path: str | Path) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(quarantine, out)
