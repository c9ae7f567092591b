"""Label the logged impressions with the teacher: soft labels for every distinct pair.

At Pinterest this runs daily over billions of rows; here it is one process over one or more
impression partitions. (Sharding, resumability and the remote LLM judge come later.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from searchrel.config import Config
from searchrel.pairs import join_items
from searchrel.tables import read_table, write_quarantine, write_table
from searchrel.teacher.model import TeacherScorer


def expected_scores(probs: np.ndarray) -> np.ndarray:
    """sum_k k * p_k with levels 1..K."""
    levels = np.arange(1, probs.shape[1] + 1, dtype=np.float32)
    return (probs * levels).sum(axis=1)


def distinct_pairs(impressions: pa.Table) -> pa.Table:
    """One row per (query, locale, item) however many days and positions it was shown."""
    keys = impressions.select(["query", "locale", "item_id"])
    grouped = keys.group_by(["query", "locale", "item_id"]).aggregate([])
    return grouped.sort_by(
        [("query", "ascending"), ("locale", "ascending"), ("item_id", "ascending")]
    )


def label_impressions(
    teacher_dir: Path,
    items_path: Path,
    impressions_path: Path,
    out_path: Path,
    cfg: Config,
    date: str | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    scorer = TeacherScorer(teacher_dir)
    items = read_table(items_path, "items")
    impressions = read_table(impressions_path, "impressions")
    table = impressions.table
    if date is not None:
        table = table.filter(
            pc.equal(table.column("date"), pa.scalar(np.datetime64(date), pa.date32()))
        )
    pairs = distinct_pairs(table)
    joined = join_items(pairs, items.table, "impressions")
    rows = joined.pairs.to_pylist()
    texts = scorer.item_texts(joined.items)
    with tqdm(total=len(rows), desc="teacher labeling", unit="pair") as bar:
        probs = scorer.predict_proba(
            [r["query"] for r in rows], texts, cfg.teacher.label_batch_size, progress=bar.update
        )
    probs = probs / probs.sum(axis=1, keepdims=True)  # exact normalisation after float32 softmax
    labels = write_table(
        pa.table(
            {
                "query": [r["query"] for r in rows],
                "locale": [r["locale"] for r in rows],
                "item_id": [r["item_id"] for r in rows],
                "probs": [p.tolist() for p in probs],
                "label": (probs.argmax(axis=1) + 1).astype(np.int8),
                "expected_score": expected_scores(probs),
                "teacher_version": [scorer.version] * len(rows),
            }
        ),
        out_path,
        "teacher_labels",
        scorer.meta.levels,
    )
    quarantine = [
        q for q in (items.quarantine, impressions.quarantine, joined.quarantine) if q.num_rows
    ]
    if quarantine:
        write_quarantine(
            pa.concat_tables(quarantine), out_path.with_name("label_quarantine.parquet")
        )
    seconds = time.perf_counter() - started
    return {
        "stage": "label",
        "teacher_version": scorer.version,
        "impression_rows": impressions.rows_in,
        "pairs": pairs.num_rows,
        "labeled": labels.num_rows,
        "unknown_items": joined.quarantine.num_rows,
        "quarantined": {"items": items.summary(), "impressions": impressions.summary()},
        "label_counts": {
            str(k): int(v)
            for k, v in zip(*np.unique(probs.argmax(axis=1) + 1, return_counts=True), strict=True)
        },
        "pairs_per_second": round(len(rows) / seconds, 1) if seconds else None,
        "date": date,
    }


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    from searchrel.cli import module_main

    module_main("label")
