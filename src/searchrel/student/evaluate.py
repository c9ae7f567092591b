"""Score the exported student on held-out human judgments (the test queries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from searchrel import metrics
from searchrel.evaluation_report import write_evaluation
from searchrel.student.dataset import load_feature_rows
from searchrel.student.model import ExportedStudent


def evaluate_student(
    student_dir: Path, features_path: Path, out_dir: Path, split: str = "test"
) -> dict[str, Any]:
    student = ExportedStudent(student_dir)
    rows = load_feature_rows(features_path, student.meta.levels)
    rows = rows.subset((rows.split == split) & (rows.source == "human"))
    if len(rows) == 0:
        raise ValueError(f"no human-labelled rows in the {split!r} split")
    probs = student.predict_proba(rows.x)
    y_true = rows.target.argmax(axis=1) + 1
    result = metrics.evaluate(
        y_true,
        probs,
        list(rows.query),
        list(rows.locale),
        student.meta.levels,
    )
    result["model_version"] = student.meta.version
    result["split"] = split
    title = f"student {student.meta.version} ({split})"
    write_evaluation(result, y_true, probs, out_dir, title=title)
    return result
