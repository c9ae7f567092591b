"""The CrowdFlower teacher bench's result file: a resumed run that covers fewer folds keeps the
folds it does not touch and lists the commands whose rows it keeps, a teacher row is set only
against the baseline of the folds that row ran, and the validation predictions a teacher saved
are read in the fold's order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bench.teacher_crowdflower import earlier_commands, keep_unplanned_folds, teacher_vs_embedding
from searchrel.tables import write_table


def _fold(k: int, *rows: str) -> dict[str, Any]:
    return {"fold": k, "models": {row: {"accuracy": 0.6} for row in rows}}


def test_a_resumed_run_over_fewer_folds_keeps_the_folds_it_does_not_plan() -> None:
    old = {
        "command": "second",
        "earlier_commands": ["first"],
        "protocols": {
            "random": {"folds": [_fold(0, "prior"), _fold(1, "prior"), _fold(2, "prior")]},
            "grouped": {"folds": [_fold(0, "prior")]},
        },
    }
    protocols: dict[str, Any] = {"random": {"folds": [_fold(0, "prior", "teacher")]}}
    keep_unplanned_folds(protocols, old, {("random", 0)})
    assert [f["fold"] for f in protocols["random"]["folds"]] == [0, 1, 2]
    assert set(protocols["random"]["folds"][0]["models"]) == {"prior", "teacher"}  # this run's
    assert [f["fold"] for f in protocols["grouped"]["folds"]] == [0]  # a protocol not run now
    assert earlier_commands(old) == ["first", "second"]


def test_a_teacher_row_of_one_fold_is_set_against_that_folds_embedding_only() -> None:
    folds = [
        {"models": {"embedding": {"accuracy": 0.5}, "teacher": {"accuracy": 0.6}}},
        {"models": {"embedding": {"accuracy": 0.9}}},  # a fold the teacher did not run
    ]
    ratio = teacher_vs_embedding(folds, "teacher")
    assert ratio["ratio_of_means"] == pytest.approx(1.2)
    assert ratio["per_fold"] == [pytest.approx(1.2)]


def test_a_plot_of_one_fold_summarises_only_that_fold() -> None:
    from bench.plot_teacher_crowdflower import only_folds

    def row(acc: float) -> dict[str, Any]:
        return {"accuracy": acc}

    result: dict[str, Any] = {
        "protocols": {
            "random": {
                "folds": [
                    {"fold": 0, "models": {"teacher": row(0.7), "variant": row(0.6)}},
                    {"fold": 1, "models": {"teacher": row(0.5)}},
                ],
                "summary": {"teacher": {"accuracy": {"mean": 0.6}}},  # over both folds
            }
        }
    }
    only_folds(result, {0})
    block = result["protocols"]["random"]
    assert [f["fold"] for f in block["folds"]] == [0]
    assert block["summary"]["teacher"]["accuracy"]["mean"] == pytest.approx(0.7)
    assert block["summary"]["variant"]["accuracy"]["mean"] == pytest.approx(0.6)


def test_saved_validation_predictions_are_read_in_the_folds_order_and_must_cover_it(
    tmp_path: Path,
) -> None:
    from bench.teacher_crowdflower import Runner

    pairs = [("red shoes", "a"), ("red shoes", "b"), ("lamp", "c")]
    probs = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]
    saved = [
        {"query": q, "locale": "en-US", "item_id": i, "label": 1 + int(np.argmax(p)), "probs": p}
        for (q, i), p in zip(pairs, probs, strict=True)
    ]
    write_table(pa.Table.from_pylist(saved), tmp_path / "v.parquet", "validation_predictions", 4)
    val = pd.DataFrame([{"query": q, "locale": "en-US", "item_id": i} for q, i in reversed(pairs)])
    got = Runner.saved_val_probs(tmp_path / "v.parquet", val)
    np.testing.assert_allclose(got, probs[::-1], rtol=1e-6)
    with pytest.raises(AssertionError, match="validation pairs"):
        Runner.saved_val_probs(tmp_path / "v.parquet", val.iloc[:2])
