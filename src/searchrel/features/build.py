"""Build the item feature store and the student's training rows.

Rows come from two sources: the teacher's soft labels on logged impressions and the human
judgments (one-hot targets). Every row carries its query's split, so the student trains on
train queries, stops early on validation queries and is scored on test queries it never saw.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchrel.config import Config, DataConfig
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer
from searchrel.features.store import ENCODER_GRAPH_DIR, ItemStore, build_item_store
from searchrel.schema import SCALAR_FEATURES
from searchrel.splits import split_of
from searchrel.tables import QUARANTINE_SCHEMA, read_table, write_quarantine, write_table

STORE_DIR = "item_store"
log = logging.getLogger(__name__)
FEATURES_FILE = "student_features.parquet"


def latest_per_pair(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One teacher label per pair: the latest date's (the teacher's current view of it)."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["date"]):
        latest[(r["query"], r["locale"], r["item_id"])] = r
    return [latest[k] for k in sorted(latest)]


def without_test_queries(impressions: pa.Table, data: DataConfig) -> tuple[pa.Table, int]:
    """The impressions that engagement rates may be computed from: not the test queries'.
    Their clicks follow their relevance, so rates counted over them would hand the held-out
    evaluation (and the deploy gate, which scores on it) its own answers through the items'
    engagement features. Returns the rows kept and how many were left out."""
    queries = impressions.column("query").to_pylist()
    keep = pa.array([split_of(q, data) != "test" for q in queries], type=pa.bool_())
    kept = impressions.filter(keep)
    return kept, impressions.num_rows - kept.num_rows


def save_encoder_graph(embedder: Embedder, directory: Path) -> Path | None:
    """The query encoder's checked ONNX graph beside the item store, for the student's bundle
    (an earlier run's graph is replaced); None where the embedder runs no graph. Never fails
    the step: without it the student step loads the encoder itself."""
    try:
        shutil.rmtree(directory, ignore_errors=True)
        return embedder.save_onnx_graph(directory)
    except OSError as exc:
        log.warning("no ONNX query encoder beside the item store: %s", exc)
        return None


def build_features(
    items_path: Path,
    judgments_path: Path,
    teacher_labels_path: Path | None,
    impressions_path: Path | None,
    out_dir: Path,
    cfg: Config,
) -> dict[str, Any]:
    started = time.perf_counter()
    levels = cfg.data.levels
    items = read_table(items_path, "items")
    judgments = read_table(judgments_path, "judgments", levels)
    labels = (
        read_table(teacher_labels_path, "teacher_labels", levels) if teacher_labels_path else None
    )
    impressions = read_table(impressions_path, "impressions") if impressions_path else None

    engagement_log, held_out_impressions = (
        without_test_queries(impressions.table, cfg.data) if impressions else (None, 0)
    )
    embedder = Embedder.from_config(cfg.features)
    build_item_store(items.table, engagement_log, embedder, cfg.features, out_dir / STORE_DIR)
    store = ItemStore(out_dir / STORE_DIR)
    save_encoder_graph(embedder, out_dir / STORE_DIR / ENCODER_GRAPH_DIR)
    featurizer = PairFeaturizer(store, embedder, cfg.features)

    sources: list[tuple[str, list[dict[str, Any]]]] = []
    human = judgments.table.to_pylist()
    for r in human:
        r["target"] = np.eye(levels, dtype=np.float32)[r["label"] - 1].tolist()
        r["weight"] = 1.0 if r["weight"] is None else r["weight"]
    sources.append(("human", human))
    if labels is not None:
        teacher = latest_per_pair(labels.table.to_pylist())
        for r in teacher:
            r["target"] = r["probs"]
            r["weight"] = 1.0
        sources.append(("teacher", teacher))

    columns: dict[str, list[Any]] = {
        name: [] for name in ("query", "locale", "item_id", "source", "split", "target", "weight")
    }
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    unknown: list[dict[str, Any]] = []
    for source, rows in sources:
        known = [r for r in rows if r["item_id"] in store.index]
        unknown += [{"source": source, **r} for r in rows if r["item_id"] not in store.index]
        if not known:
            continue
        row_idx = np.array([store.index[r["item_id"]] for r in known], dtype=np.int64)
        blocks.append(featurizer.featurize_many([r["query"] for r in known], row_idx))
        for r in known:
            columns["query"].append(r["query"])
            columns["locale"].append(r["locale"])
            columns["item_id"].append(r["item_id"])
            columns["source"].append(source)
            columns["split"].append(split_of(r["query"], cfg.data))
            columns["target"].append(r["target"])
            columns["weight"].append(float(r["weight"]))
    q = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, store.dim), np.float32)
    i = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros((0, store.dim), np.float32)
    s = (
        np.concatenate([b[2] for b in blocks])
        if blocks
        else np.zeros((0, len(SCALAR_FEATURES)), np.float32)
    )
    table = pa.table(
        {
            **columns,
            "query_embedding": list(q),
            "item_embedding": list(i),
            **{name: s[:, k] for k, name in enumerate(SCALAR_FEATURES)},
        }
    )
    write_table(table, out_dir / FEATURES_FILE, "student_features", levels)
    quarantine = [
        v.quarantine
        for v in (items, judgments, labels, impressions)
        if v is not None and v.quarantine.num_rows
    ]
    if unknown:
        quarantine.append(
            pa.table(
                {
                    "table": ["student_features"] * len(unknown),
                    "row_index": list(range(len(unknown))),
                    "reason": ["unknown_item"] * len(unknown),
                    "row_json": [json.dumps(u, default=str) for u in unknown],
                },
                schema=QUARANTINE_SCHEMA,
            )
        )
    if quarantine:
        write_quarantine(pa.concat_tables(quarantine), out_dir / "quarantine.parquet")
    splits = columns["split"]
    summary = {
        "stage": "features",
        "items": len(store),
        "rows": table.num_rows,
        "rows_by_source": {src: columns["source"].count(src) for src, _ in sources},
        "rows_by_split": {sp: splits.count(sp) for sp in ("train", "val", "test")},
        "unknown_items": len(unknown),
        "engagement_rows_of_test_queries_left_out": held_out_impressions,
        "embedding_dim": store.dim,
        "scalar_features": list(SCALAR_FEATURES),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
