"""The pipeline's first step: every table validated, and the impression log's pairs that no
human judged counted (what the teacher's labels add)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from searchrel.config import load_config
from searchrel.data.ingest import TABLES, ingest


def test_ingest_counts_the_distinct_logged_pairs_and_those_no_human_judged(tmp_path: Path) -> None:
    outputs = {name: tmp_path / f"{name}.parquet" for name in TABLES}
    summary = ingest("sample", outputs, load_config(overrides={"data": {"levels": 5}}))
    impressions = pq.read_table(outputs["impressions"]).to_pylist()
    judgments = pq.read_table(outputs["judgments"]).to_pylist()
    key = ("query", "locale", "item_id")
    logged = {tuple(row[k] for k in key) for row in impressions}
    judged = {tuple(row[k] for k in key) for row in judgments}
    counted = summary["impressions"]
    assert counted["pairs"] == len(logged) < len(impressions)  # the log repeats pairs by day
    assert counted["never_judged"] == len(logged - judged) > 0
    assert len(logged & judged) > 0  # the sample's log holds judged pairs too
