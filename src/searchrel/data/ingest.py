"""The pipeline's first step: bring the three input tables in, validated, with a summary.

`source` is "sample" (the bundled sample, built on the fly), or a directory holding
items.parquet, judgments.parquet and impressions.parquet (e.g. an import's output).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from searchrel.config import Config
from searchrel.data.impression_pairs import distinct_pairs, never_judged
from searchrel.tables import read_table, write_quarantine, write_table

TABLES = ("items", "judgments", "impressions")


def ingest(
    source: str, outputs: dict[str, Path], cfg: Config, summary_path: Path | None = None
) -> dict[str, Any]:
    """Validate each table of `source` and write its good rows to `outputs[name]`."""
    with tempfile.TemporaryDirectory() as tmp:
        if source == "sample":
            from searchrel.data.sample import build_sample

            src = Path(tmp)
            build_sample(src)
        else:
            src = Path(source)
            if not src.is_dir():
                raise FileNotFoundError(f"data source is not a directory: {source}")
        summary: dict[str, Any] = {"stage": "ingest", "source": source, "levels": cfg.data.levels}
        tables: dict[str, pa.Table] = {}
        for name in TABLES:
            result = read_table(
                src / f"{name}.parquet",
                name,
                cfg.data.levels,
                quarantine_to=Path(tmp) / f"{name}.q.parquet",
            )
            write_table(result.table, outputs[name], name, cfg.data.levels)
            if result.quarantine.num_rows:
                write_quarantine(
                    result.quarantine, outputs[name].with_name(f"{name}.quarantine.parquet")
                )
            summary[name] = result.summary()
            tables[name] = result.table
        logged = tables["impressions"]
        summary["impressions"]["pairs"] = distinct_pairs(logged).num_rows
        summary["impressions"]["never_judged"] = never_judged(logged, tables["judgments"]).num_rows
    if summary_path is not None:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
