"""Student training rows as arrays: no per-row Python in the training loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from searchrel.features.pairs import assemble_inputs
from searchrel.schema import SCALAR_FEATURES
from searchrel.tables import read_table


def list_column(table: pa.Table, name: str) -> np.ndarray:
    """A list<float> column of equal-length lists as an (n, d) float32 array."""
    col = table.column(name).combine_chunks()
    n = len(col)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(n, -1) if n else flat.reshape(0, 0)


@dataclass
class FeatureRows:
    x: np.ndarray  # (n, in_dim) student inputs
    target: np.ndarray  # (n, K) target distribution
    weight: np.ndarray  # (n,)
    source: np.ndarray  # "human" / "teacher"
    split: np.ndarray  # "train" / "val" / "test"
    query: np.ndarray
    locale: np.ndarray
    item_id: np.ndarray
    embedding_dim: int

    def subset(self, mask: np.ndarray) -> FeatureRows:
        return FeatureRows(
            self.x[mask],
            self.target[mask],
            self.weight[mask],
            self.source[mask],
            self.split[mask],
            self.query[mask],
            self.locale[mask],
            self.item_id[mask],
            self.embedding_dim,
        )

    def __len__(self) -> int:
        return len(self.x)


def load_feature_rows(path: Path, levels: int) -> FeatureRows:
    table = read_table(path, "student_features", levels).table
    q = list_column(table, "query_embedding")
    i = list_column(table, "item_embedding")
    scalars = (
        np.stack([table.column(n).to_numpy().astype(np.float32) for n in SCALAR_FEATURES], axis=1)
        if table.num_rows
        else np.zeros((0, len(SCALAR_FEATURES)), np.float32)
    )

    def strings(name: str) -> np.ndarray:
        return np.array(table.column(name).to_pylist(), dtype=object)

    return FeatureRows(
        x=assemble_inputs(q, i, scalars) if table.num_rows else np.zeros((0, 0), np.float32),
        target=list_column(table, "target"),
        weight=table.column("weight").to_numpy().astype(np.float32),
        source=strings("source"),
        split=strings("split"),
        query=strings("query"),
        locale=strings("locale"),
        item_id=strings("item_id"),
        embedding_dim=q.shape[1] if table.num_rows else 0,
    )
