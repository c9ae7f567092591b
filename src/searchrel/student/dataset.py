"""Student training rows as arrays: no per-row Python in the training loop."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

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


def with_teacher_options(
    rows: FeatureRows, targets: Literal["soft", "hard"], confidence_weight: bool
) -> FeatureRows:
    """The rows as the student trains on them (``student.teacher_targets``,
    ``student.teacher_confidence_weight``): teacher rows keep the teacher's distribution or
    get a one-hot target at its most likely level, and with ``confidence_weight`` their
    weights are scaled by the teacher's top probability (read from the distribution before any
    hardening, so a hard label keeps how sure the teacher was). Human rows are unchanged; so
    is ``rows`` (a changed copy is returned)."""
    teacher = rows.source == "teacher"
    if not teacher.any() or (targets == "soft" and not confidence_weight):
        return rows
    target, weight = rows.target.copy(), rows.weight.copy()
    if confidence_weight:
        weight[teacher] *= rows.target[teacher].max(axis=1)
    if targets == "hard":
        levels = rows.target.shape[1]
        target[teacher] = np.eye(levels, dtype=target.dtype)[rows.target[teacher].argmax(axis=1)]
    return replace(rows, target=target, weight=weight)


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
