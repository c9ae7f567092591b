"""CrowdFlower folds for the teacher benchmark: the data with its source fold, and the splits.

Two protocols, five test folds each:

* ``grouped``: ``GroupKFold(5)`` on the normalised query, so no query is in both the training
  and the test side of a fold (the paper's setting: relevance of queries never trained on).
* ``random``: the CSV folds as shipped (fold-1 .. fold-10, rows drawn at random, so the test
  queries were seen in training, as in the 2015 Kaggle competition), paired in file order into
  five test folds: (1, 2), (3, 4), ..., (9, 10).

Every row comes through ``searchrel``'s own importer (one import per CSV, so each judgment
keeps the file it came from); nothing is parsed twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import GroupKFold

from searchrel.data.crowdflower import import_crowdflower
from searchrel.splits import query_key

log = logging.getLogger(__name__)

PROTOCOLS = ("grouped", "random")
N_SPLITS = 5
_NUMBER = re.compile(r"(\d+)")


@dataclass
class CrowdFlower:
    """All judged pairs, each with its source CSV fold, and the items they name."""

    items: pa.Table  # the ITEMS contract columns, one row per item (Arrow: nulls stay None)
    judgments: pd.DataFrame  # the JUDGMENTS columns + csv_fold (int) + qkey (normalised query)
    summaries: list[dict[str, Any]] = field(default_factory=list)  # the importer's, per CSV


def csv_fold_number(path: Path) -> int:
    numbers = _NUMBER.findall(path.stem)
    return int(numbers[-1]) if numbers else -1


def load_crowdflower(csv_paths: list[Path], work_dir: Path) -> CrowdFlower:
    """Import each CSV on its own (the importer's checks and cleaning) and stack the results."""
    items, judgments, summaries = [], [], []
    for path in sorted(csv_paths, key=lambda p: (csv_fold_number(p), p.name)):
        out = work_dir / "import" / path.stem
        summary = import_crowdflower([path], out)
        summaries.append(summary)
        j = pd.read_parquet(out / "judgments.parquet")
        j["csv_fold"] = csv_fold_number(path)
        judgments.append(j)
        items.append(pq.read_table(out / "items.parquet"))
    all_items = pa.concat_tables(items)
    all_judgments = pd.concat(judgments, ignore_index=True)
    if len(set(all_items.column("item_id").to_pylist())) != all_items.num_rows:
        raise ValueError("crowdflower: an item id appears in more than one CSV")
    all_judgments["qkey"] = [query_key(q) for q in all_judgments["query"]]
    return CrowdFlower(all_items, all_judgments, summaries)


@dataclass
class FoldSpec:
    protocol: str
    fold: int  # 0-based test-fold index
    test_idx: np.ndarray  # row indexes into CrowdFlower.judgments
    train_idx: np.ndarray  # everything else
    describe: dict[str, Any]  # what the test fold is (CSV files or query count), for the JSON


def fold_specs(judgments: pd.DataFrame, protocol: str, n_splits: int = N_SPLITS) -> list[FoldSpec]:
    """The ``n_splits`` test folds of one protocol, deterministic (no RNG involved)."""
    n = len(judgments)
    all_idx = np.arange(n)
    specs: list[FoldSpec] = []
    if protocol == "grouped":
        # GroupKFold without shuffling: groups (queries) go, largest first, to the fold with the
        # fewest rows so far, so the folds are balanced in rows and identical on every run.
        splitter = GroupKFold(n_splits=n_splits)
        groups = judgments["qkey"].to_numpy()
        for k, (train, test) in enumerate(splitter.split(all_idx, groups=groups)):
            specs.append(
                FoldSpec(
                    protocol,
                    k,
                    np.sort(test),
                    np.sort(train),
                    {"test_queries": int(judgments["qkey"].iloc[test].nunique())},
                )
            )
    elif protocol == "random":
        csv_folds = sorted(judgments["csv_fold"].unique())
        if len(csv_folds) < n_splits:
            raise ValueError(f"random protocol: {len(csv_folds)} CSV folds < {n_splits} splits")
        groups_of = [list(g) for g in np.array_split(np.array(csv_folds), n_splits)]
        for k, members in enumerate(groups_of):
            mask = judgments["csv_fold"].isin(members).to_numpy()
            specs.append(
                FoldSpec(
                    protocol,
                    k,
                    all_idx[mask],
                    all_idx[~mask],
                    {
                        "test_csv_folds": [int(m) for m in members],
                        "test_queries": int(judgments["qkey"][mask].nunique()),
                    },
                )
            )
    else:
        raise ValueError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    for spec in specs:  # a fold must partition the rows
        if len(spec.test_idx) + len(spec.train_idx) != n:
            raise AssertionError(f"{protocol} fold {spec.fold} does not partition the rows")
    return specs


def subsample(idx: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """At most ``max_rows`` of ``idx``, drawn without replacement (sorted); all when None."""
    if max_rows is None or len(idx) <= max_rows:
        return idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(idx, size=max_rows, replace=False))
