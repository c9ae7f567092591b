"""Import the CrowdFlower "Search Results Relevance" folds into the contract tables.

Each CSV row is one judged (query, product) pair: ``id, query, product_title,
product_description, median_relevance (1..4), relevance_variance``. The rows carry no product
id, so every row becomes its own item ``cf-{id}``. Every row read is accounted for: it becomes
one judgment (and its item) or one quarantined row with a reason, its source file and line.

The data lives in ``../shared/data/crowdflower`` and is never copied into the repository.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.progress import track

from searchrel import tables
from searchrel.schema import ITEMS, JUDGMENTS
from searchrel.text import clean_text

CROWDFLOWER_LEVELS = 4  # median_relevance: 1 irrelevant .. 4 perfectly relevant
CROWDFLOWER_LOCALE = "en-US"
ITEM_PREFIX = "cf-"
COLUMNS = (
    "id",
    "query",
    "product_title",
    "product_description",
    "median_relevance",
    "relevance_variance",
)
SOURCE_TABLE = "crowdflower_csv"  # the `table` of rows quarantined before the contract check
_FOLD = re.compile(r"(\d+)")


def find_crowdflower_csvs(shared: Path) -> list[Path]:
    """The fold CSVs under ``shared`` (``shared/data/crowdflower`` or the folder itself),
    in fold order (fold-1, fold-2, ..., fold-10); empty when there are none."""
    for folder in (shared / "data" / "crowdflower", shared / "crowdflower", shared):
        if folder.is_dir():
            found = sorted(folder.glob("*.csv"), key=_fold_key)
            if found:
                return found
    return []


def _fold_key(path: Path) -> tuple[int, str]:
    numbers = _FOLD.findall(path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def relevance_weight(variance: float) -> float:
    """Training weight from rater agreement: 1 / (1 + relevance_variance).

    ``relevance_variance`` is the spread of the raters' scores around the median (0 when all
    raters agreed; about 1.5 at most in the data). The weight is 1 for unanimous pairs and
    decays smoothly with disagreement (0.4 at variance 1.5) while staying in (0, 1] for any
    non-negative variance, so no pair is ever dropped for being contested.
    """
    return 1.0 / (1.0 + variance)


def _parse_label(raw: str | None) -> tuple[int | None, str | None]:
    text = (raw or "").strip()
    if not text:
        return None, "missing:median_relevance"
    try:
        value = float(text)
    except ValueError:
        return None, "non_numeric_label"
    if not math.isfinite(value) or not value.is_integer():
        return None, "non_integer_label"
    return int(value), None  # the range 1..K is the contract's check (label_out_of_range)


def _parse_variance(raw: str | None) -> tuple[float | None, str | None]:
    text = (raw or "").strip()
    if not text:
        return None, None  # no agreement information: the judgment keeps a null weight
    try:
        value = float(text)
    except ValueError:
        return None, "bad_variance"
    if not math.isfinite(value) or value < 0:
        return None, "bad_variance"
    return value, None


class _Rows:
    """Rows read so far: the candidates and the rows quarantined before the contract check."""

    def __init__(self) -> None:
        self.origin: list[tuple[str, int, Any]] = []  # (file, line, raw fields) per row read
        self.early: dict[int, tuple[str, str]] = {}  # row -> (table, reason)
        self.items: list[dict[str, Any]] = []
        self.judgments: list[dict[str, Any]] = []
        self.candidate_rows: list[int] = []  # row index of each candidate

    def reject(self, source: str, line: int, raw: Any, reason: str) -> None:
        self.early[len(self.origin)] = (SOURCE_TABLE, reason)
        self.origin.append((source, line, raw))

    def accept(self, source: str, line: int, raw: dict[str, str]) -> None:
        row = len(self.origin)
        self.origin.append((source, line, raw))
        label, reason = _parse_label(raw.get("median_relevance"))
        variance, var_reason = _parse_variance(raw.get("relevance_variance"))
        reason = reason or var_reason
        raw_id = (raw.get("id") or "").strip()
        if not raw_id:
            reason = reason or "missing:id"
        if reason:
            self.early[row] = (SOURCE_TABLE, reason)
            return
        item_id = f"{ITEM_PREFIX}{raw_id}"
        description = clean_text(raw.get("product_description"))
        self.items.append(
            {
                "item_id": item_id,
                "locale": CROWDFLOWER_LOCALE,
                "title": clean_text(raw.get("product_title")),
                "description": description or None,
                "image_uri": None,
                "caption": None,
                "board_titles": None,
                "engaged_queries": None,
                "link_title": None,
                "link_description": None,
            }
        )
        self.judgments.append(
            {
                "query": clean_text(raw.get("query")),
                "locale": CROWDFLOWER_LOCALE,
                "item_id": item_id,
                "label": label,
                "weight": None if variance is None else relevance_weight(variance),
            }
        )
        self.candidate_rows.append(row)


def _read_csv(path: Path, rows: _Rows) -> int:
    """Read one fold into ``rows``; returns the number of rows read from it."""
    source = str(path)
    before = len(rows.origin)
    # Undecodable bytes become U+FFFD, which the contract quarantines as undecodable_text.
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return 0
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise tables.ContractError(
                f"crowdflower: {path} lacks column(s) {', '.join(missing)} (has {header})"
            )
        while True:
            line = reader.line_num + 1  # first physical line of the next record
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                rows.reject(source, line, None, f"malformed_csv:{exc}")
                if reader.line_num < line:  # nothing consumed: stop rather than spin
                    break
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line is not a row
            if len(fields) != len(header):
                rows.reject(
                    source,
                    line,
                    fields,
                    f"malformed_csv:expected {len(header)} fields, got {len(fields)}",
                )
                continue
            rows.accept(source, line, dict(zip(header, fields, strict=True)))
    return len(rows.origin) - before


def import_crowdflower(csv_paths: list[Path], out_dir: Path) -> dict[str, Any]:
    """Import CrowdFlower folds into ``out_dir``: items, judgments, quarantine and summary.

    Writes items.parquet (ITEMS), judgments.parquet (JUDGMENTS, K = 4), quarantine.parquet
    (tables.QUARANTINE_SCHEMA; row_json holds source_file, source_line and the raw fields) and
    summary.json, and returns the summary. rows_read == judgments + quarantined always.
    """
    paths = [Path(p) for p in csv_paths]
    if not paths:
        raise tables.ContractError("crowdflower: no CSV files given")
    for p in paths:
        if not p.is_file():
            raise tables.ContractError(f"crowdflower: no such file {p}")
    out = Path(out_dir)
    rows = _Rows()
    per_file = []
    progress = Console(stderr=True)  # stdout stays clean for the summary JSON
    for p in track(paths, description="crowdflower folds", transient=True, console=progress):
        per_file.append({"file": str(p), "rows_read": _read_csv(p, rows)})

    # The contract decides the rest: a row whose item or judgment breaks it is quarantined
    # whole, so that no judgment points at a missing item and no item lacks its judgment.
    failed: dict[int, tuple[str, str]] = dict(rows.early)
    items_check = tables.validate(pd.DataFrame(rows.items, columns=_item_columns()), "items")
    for q in items_check.quarantine.to_pylist():
        failed[rows.candidate_rows[q["row_index"]]] = ("items", q["reason"])
    # Candidates whose item is good go on to the judgments check.
    keep = [k for k, row in enumerate(rows.candidate_rows) if row not in failed]
    judged = pd.DataFrame([rows.judgments[k] for k in keep], columns=_judgment_columns())
    judgments_check = tables.validate(judged, "judgments", CROWDFLOWER_LEVELS)
    for q in judgments_check.quarantine.to_pylist():
        failed[rows.candidate_rows[keep[q["row_index"]]]] = ("judgments", q["reason"])

    good = [k for k, row in enumerate(rows.candidate_rows) if row not in failed]
    items = pd.DataFrame([rows.items[k] for k in good], columns=_item_columns())
    judgments = pd.DataFrame([rows.judgments[k] for k in good], columns=_judgment_columns())
    out.mkdir(parents=True, exist_ok=True)
    tables.write_table(items, out / "items.parquet", "items")
    judgments_table = tables.write_table(
        judgments, out / "judgments.parquet", "judgments", CROWDFLOWER_LEVELS
    )
    quarantine = _quarantine_table(rows, failed)
    tables.write_quarantine(quarantine, out / "quarantine.parquet")

    labels = Counter(judgments_table.column("label").to_pylist())
    summary: dict[str, Any] = {
        "source": "crowdflower",
        "levels": CROWDFLOWER_LEVELS,
        "locale": CROWDFLOWER_LOCALE,
        "weight": "1 / (1 + relevance_variance)",
        "files": per_file,
        "rows_read": len(rows.origin),
        "items": len(items),
        "judgments": judgments_table.num_rows,
        "queries": len(set(judgments_table.column("query").to_pylist())),
        "quarantined": quarantine.num_rows,
        "reasons": dict(sorted(Counter(r for _, r in failed.values()).items())),
        "label_counts": {str(k): labels.get(k, 0) for k in range(1, CROWDFLOWER_LEVELS + 1)},
    }
    if summary["rows_read"] != summary["judgments"] + summary["quarantined"]:
        raise AssertionError(f"crowdflower: rows unaccounted for: {summary}")  # a bug here
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return summary


def _item_columns() -> list[str]:
    return list(ITEMS.names)


def _judgment_columns() -> list[str]:
    return list(JUDGMENTS.names)


def _quarantine_table(rows: _Rows, failed: dict[int, tuple[str, str]]) -> pa.Table:
    records = []
    for row in sorted(failed):
        table, reason = failed[row]
        source, line, raw = rows.origin[row]
        detail = {"source_file": source, "source_line": line, "fields": raw}
        records.append(
            {
                "table": table,
                "row_index": row,
                "reason": reason,
                "row_json": json.dumps(detail, ensure_ascii=False),
            }
        )
    if not records:
        return tables.QUARANTINE_SCHEMA.empty_table()
    return pa.Table.from_pylist(records, schema=tables.QUARANTINE_SCHEMA)
