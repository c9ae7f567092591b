"""Score the teacher on held-out human judgments (the test queries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from searchrel import metrics
from searchrel.config import Config
from searchrel.evaluation_report import write_evaluation
from searchrel.item_join import join_items
from searchrel.splits import split_of
from searchrel.tables import read_table
from searchrel.teacher.ensemble import load_scorer


def evaluate_teacher(
    teacher_dir: Path,
    items_path: Path,
    judgments_path: Path,
    out_dir: Path,
    cfg: Config,
    split: str = "test",
) -> dict[str, Any]:
    scorer = load_scorer(teacher_dir, attn_implementation=cfg.teacher.attn_implementation)
    levels = scorer.meta.levels
    items = read_table(items_path, "items")
    judgments = read_table(judgments_path, "judgments", levels)
    joined = join_items(judgments.table, items.table, "judgments")
    rows = joined.pairs.to_pylist()
    keep = [i for i, r in enumerate(rows) if split_of(r["query"], cfg.data) == split]
    if not keep:
        raise ValueError(f"no judgments fall in the {split!r} split")
    rows = [rows[i] for i in keep]
    texts = scorer.item_texts([joined.items[i] for i in keep])
    probs = scorer.predict_proba(
        [r["query"] for r in rows],
        texts,
        cfg.teacher.label_batch_size,
        max_batch_tokens=cfg.teacher.label_batch_tokens,
    )
    y_true = np.array([r["label"] for r in rows])
    result = metrics.evaluate(
        y_true,
        probs,
        [r["query"] for r in rows],
        [r["locale"] for r in rows],
        levels,
    )
    result["model_version"] = scorer.version
    result["split"] = split
    write_evaluation(result, y_true, probs, out_dir, title=f"teacher {scorer.version} ({split})")
    return result
