"""The item feature store: everything about an item that the student needs, computed once.

Built by the features step from the items and the impression log, read by the trainer and by
the server at start-up. A directory holding ``item_features.parquet`` (the ITEM_FEATURES
contract), ``bm25_stats.json`` (document frequencies per field) and ``store.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from searchrel.config import FeatureConfig
from searchrel.features.embedder import Embedder
from searchrel.schema import TEXT_FIELDS_FOR_BM25
from searchrel.tables import read_table, write_table
from searchrel.text import clean_text, field_text, tokenize

STORE_TABLE = "item_features.parquet"
BM25_FILE = "bm25_stats.json"
STORE_META = "store.json"
# The query encoder as an ONNX graph, checked, beside the vectors it made (when the features
# step ran one): the student step bundles it without loading the model again.
ENCODER_GRAPH_DIR = "query_encoder"
# Engagement rate -> the impression-log count it divides by impressions.
RATES = {"click_rate": "clicks", "save_rate": "saves", "closeup_rate": "closeups"}


def engagement_rates(
    impressions: pa.Table | None, prior_impressions: float
) -> dict[str, dict[str, float]]:
    """Per item: click, save and close-up rates smoothed toward the global rate."""
    if impressions is None or impressions.num_rows == 0:
        return {}
    agg = (
        impressions.group_by("item_id")
        .aggregate([(c, "sum") for c in ("impressions", "clicks", "saves", "closeups")])
        .to_pylist()
    )
    total_imp = sum(r["impressions_sum"] for r in agg) or 1
    global_rate = {rate: sum(r[f"{c}_sum"] for r in agg) / total_imp for rate, c in RATES.items()}
    out: dict[str, dict[str, float]] = {}
    for r in agg:
        denom = r["impressions_sum"] + prior_impressions
        out[r["item_id"]] = {
            rate: (r[f"{c}_sum"] + prior_impressions * global_rate[rate]) / denom
            for rate, c in RATES.items()
        }
        out[r["item_id"]]["log_impressions"] = math.log1p(r["impressions_sum"])
    return out


def embed_text(item: dict[str, Any]) -> str:
    """What the item embedding reads: the title, caption and description (what the Pin shows)."""
    return clean_text([item["title"], item.get("caption"), item.get("description")])[:1000]


def field_texts(item: dict[str, Any]) -> dict[str, str]:
    """The item's text per BM25 field."""
    return {name: field_text(item, name) for name in TEXT_FIELDS_FOR_BM25}


def previous_embeddings(previous: Path | None, embedder: Embedder) -> dict[str, np.ndarray]:
    """Vectors of an earlier store by embedded-text hash, if it used the same encoder."""
    if previous is None or not (previous / STORE_META).exists():
        return {}
    meta = json.loads((previous / STORE_META).read_text(encoding="utf-8"))
    if meta.get("embedder") != embedder.source:
        return {}
    table = read_table(previous / STORE_TABLE, "item_features").table
    vectors = table.column("embedding").to_pylist()
    return {
        h: np.asarray(v, dtype=np.float32)
        for h, v in zip(table.column("embed_hash").to_pylist(), vectors, strict=True)
    }


def build_item_store(
    items: pa.Table,
    impressions: pa.Table | None,
    embedder: Embedder,
    cfg: FeatureConfig,
    out_dir: Path,
    previous: Path | None = None,
) -> dict[str, Any]:
    """Write the store; with ``previous`` (an earlier store), only new or changed items are
    embedded again: the encoder is the costly part, the rest is recomputed (cheap, and the
    BM25 statistics and engagement rates move with the whole catalogue and log)."""
    rows = items.to_pylist()
    per_item = [field_texts(r) for r in rows]
    texts = {name: [t[name] for t in per_item] for name in TEXT_FIELDS_FOR_BM25}
    tokens = {name: [tokenize(t) for t in texts[name]] for name in TEXT_FIELDS_FOR_BM25}
    all_text = [" | ".join(t for t in parts if t) for parts in zip(*texts.values(), strict=True)]
    to_embed = [embed_text(r) for r in rows]
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in to_embed]
    known = previous_embeddings(previous, embedder)
    fresh = [i for i, h in enumerate(hashes) if h not in known]
    embeddings = np.zeros((len(rows), embedder.dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in known:
            embeddings[i] = known[h]
    if fresh:
        embeddings[fresh] = embedder.encode([to_embed[i] for i in fresh], progress=True)
    engagement = engagement_rates(impressions, cfg.engagement_prior_impressions)
    default = {"click_rate": 0.0, "save_rate": 0.0, "closeup_rate": 0.0, "log_impressions": 0.0}
    if engagement:  # items never shown get the global (prior) rates
        default = {k: float(np.mean([e[k] for e in engagement.values()])) for k in default}
        default["log_impressions"] = 0.0
    eng = [engagement.get(r["item_id"], default) for r in rows]
    table = pa.table(
        {
            "item_id": [r["item_id"] for r in rows],
            "locale": [r["locale"] for r in rows],
            "embedding": [e.tolist() for e in embeddings],
            "embed_hash": hashes,
            **{f"tokens_{name}": tokens[name] for name in TEXT_FIELDS_FOR_BM25},
            "title_text": texts["title"],
            "all_text": all_text,
            **{k: [float(e[k]) for e in eng] for k in default},
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(table, out_dir / STORE_TABLE, "item_features")
    stats = {
        name: {
            "n": len(rows),
            "avgdl": float(np.mean([len(t) for t in tokens[name]])) if rows else 0.0,
            "df": dict(Counter(term for toks in tokens[name] for term in set(toks))),
        }
        for name in TEXT_FIELDS_FOR_BM25
    }
    (out_dir / BM25_FILE).write_text(json.dumps(stats), encoding="utf-8")
    meta = {
        "embedder": embedder.source,
        "dim": embedder.dim,
        "items": len(rows),
        "embedded": len(fresh),
        "reused": len(rows) - len(fresh),
    }
    (out_dir / STORE_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


@dataclass
class BM25Field:
    n: int
    avgdl: float
    df: dict[str, int]

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))


class ItemStore:
    """The store loaded for lookups: arrays by row, and an id -> row index."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / STORE_META).read_text(encoding="utf-8"))
        self.embedder_source: str = meta["embedder"]
        self.dim: int = int(meta["dim"])
        table = read_table(self.directory / STORE_TABLE, "item_features").table
        self.ids: list[str] = table.column("item_id").to_pylist()
        self.index = {item_id: i for i, item_id in enumerate(self.ids)}
        self.embeddings = np.asarray(
            table.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32
        ).reshape(len(self.ids), self.dim)
        self.term_counts = {
            name: [Counter(t) for t in table.column(f"tokens_{name}").to_pylist()]
            for name in TEXT_FIELDS_FOR_BM25
        }
        self.lengths = {
            name: np.array([sum(c.values()) for c in counts], dtype=np.float32)
            for name, counts in self.term_counts.items()
        }
        self.title_text = [t.lower() for t in table.column("title_text").to_pylist()]
        self.all_text = [t.lower() for t in table.column("all_text").to_pylist()]
        self.engagement = (
            np.stack(
                [
                    table.column(c).to_numpy().astype(np.float32)
                    for c in ("click_rate", "save_rate", "closeup_rate", "log_impressions")
                ],
                axis=1,
            )
            if self.ids
            else np.zeros((0, 4), dtype=np.float32)
        )
        stats = json.loads((self.directory / BM25_FILE).read_text(encoding="utf-8"))
        self.bm25 = {name: BM25Field(**stats[name]) for name in TEXT_FIELDS_FOR_BM25}
        # An item the store has never seen gets the catalogue's mean rates and no impressions.
        self.default_engagement = (
            self.engagement.mean(axis=0) if self.ids else np.zeros(4, dtype=np.float32)
        )
        self.default_engagement[3] = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Row indexes of the known ids, and the ids that are not in the store."""
        rows, missing = [], []
        for item_id in item_ids:
            i = self.index.get(item_id)
            if i is None:
                missing.append(item_id)
            else:
                rows.append(i)
        return np.array(rows, dtype=np.int64), missing


class InlineItems:
    """Items sent with a request (not in the store), laid out like an ``ItemStore`` so the same
    featurizer scores them: embedded now, BM25 against the catalogue's statistics, the
    catalogue's mean engagement."""

    def __init__(self, items: list[dict[str, Any]], store: ItemStore, embedder: Embedder):
        self.dim = store.dim
        self.bm25 = store.bm25
        self.ids = [r["item_id"] for r in items]
        self.embeddings = (
            embedder.encode([embed_text(r) for r in items])
            if items
            else np.zeros((0, store.dim), dtype=np.float32)
        )
        per_item = [field_texts(r) for r in items]
        self.term_counts = {
            name: [Counter(tokenize(t[name])) for t in per_item] for name in TEXT_FIELDS_FOR_BM25
        }
        self.lengths = {
            name: np.array([sum(c.values()) for c in counts], dtype=np.float32)
            for name, counts in self.term_counts.items()
        }
        self.title_text = [t["title"].lower() for t in per_item]
        self.all_text = [" | ".join(v for v in t.values() if v).lower() for t in per_item]
        self.engagement = np.tile(store.default_engagement, (len(items), 1)).astype(np.float32)
