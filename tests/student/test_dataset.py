"""Training rows: how the teacher's labels reach the student (soft or hard, weighted by the
teacher's confidence or not), in the rows and through ``fit_student``."""

from __future__ import annotations

import numpy as np
import torch

from searchrel.config import StudentConfig
from searchrel.student.dataset import FeatureRows, with_teacher_options
from searchrel.student.train import fit_student


def _rows(target: np.ndarray, sources: list[str], x: np.ndarray | None = None) -> FeatureRows:
    n = len(sources)
    arr = np.array(sources, dtype=object)
    return FeatureRows(
        x=np.zeros((n, 4), np.float32) if x is None else x,
        target=target.astype(np.float32), weight=np.full(n, 0.8, np.float32), source=arr,
        split=np.array(["train"] * n, dtype=object), query=arr, locale=arr, item_id=arr,
        embedding_dim=1,
    )  # fmt: skip


TARGETS = np.array(
    [
        [0.1, 0.2, 0.7],  # teacher, sure of level 3
        [0.4, 0.35, 0.25],  # teacher, unsure, leaning to level 1
        [0.0, 1.0, 0.0],  # human, level 2
    ]
)


def test_hard_targets_are_one_hot_at_the_teachers_most_likely_level_and_humans_unchanged() -> None:
    rows = _rows(TARGETS, ["teacher", "teacher", "human"])
    hard = with_teacher_options(rows, "hard", confidence_weight=False)
    np.testing.assert_array_equal(hard.target, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(hard.weight, rows.weight)  # no weighting asked for
    np.testing.assert_array_equal(rows.target, TARGETS.astype(np.float32))  # input untouched


def test_confidence_weight_scales_teacher_rows_by_their_top_probability_even_when_hard() -> None:
    rows = _rows(TARGETS, ["teacher", "teacher", "human"])
    for targets in ("soft", "hard"):
        out = with_teacher_options(rows, targets, confidence_weight=True)  # type: ignore[arg-type]
        np.testing.assert_allclose(out.weight, [0.8 * 0.7, 0.8 * 0.4, 0.8], rtol=1e-6)
    soft = with_teacher_options(rows, "soft", confidence_weight=True)
    np.testing.assert_array_equal(soft.target, rows.target)  # soft targets stay soft


def test_the_default_options_train_on_the_rows_as_given() -> None:
    rows = _rows(TARGETS, ["teacher", "teacher", "human"])
    cfg = StudentConfig()
    assert cfg.teacher_targets == "soft" and cfg.teacher_confidence_weight is False
    assert with_teacher_options(rows, cfg.teacher_targets, cfg.teacher_confidence_weight) is rows


def _mean_prediction(rows: FeatureRows, **options: object) -> np.ndarray:
    cfg = StudentConfig(hidden=[8], epochs=80, patience=80, learning_rate=2e-2, seed=3, **options)
    net, _, _ = fit_student(rows, rows, cfg, levels=2)
    with torch.inference_mode():
        return net(torch.from_numpy(rows.x)).numpy().mean(axis=0)


def test_fit_student_learns_from_hard_or_confidence_weighted_teacher_labels_as_configured() -> None:
    # Every pair looks alike, so the student can only learn the (weighted) mean target:
    # 60 pairs the teacher is sure are level 1 (0.95) and 60 it leans, unsure, to level 2.
    rng = np.random.default_rng(0)
    x = (1 + 0.01 * rng.normal(size=(120, 4))).astype(np.float32)
    target = np.array([[0.95, 0.05]] * 60 + [[0.45, 0.55]] * 60)
    rows = _rows(target, ["teacher"] * 120, x)
    soft = _mean_prediction(rows)
    assert abs(soft[0] - 0.70) < 0.03  # the plain mean of the two distributions
    weighted = _mean_prediction(rows, teacher_confidence_weight=True)
    assert abs(weighted[0] - (0.95 * 0.95 + 0.55 * 0.45) / 1.5) < 0.03  # sure pairs count more
    assert weighted[0] > soft[0] + 0.05
    hard = _mean_prediction(rows, teacher_targets="hard")
    # Half the pairs say level 1, half level 2. (Early stopping scores the soft targets as
    # given, so the kept epoch leans a little toward 0.70: hence the wider margin.)
    assert abs(hard[0] - 0.5) < 0.06 and hard[0] < soft[0] - 0.1
