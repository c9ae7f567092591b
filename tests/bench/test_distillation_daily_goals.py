"""The daily-log bench's verdicts: which arm is "the distilled student" (chosen on validation,
never on the test fold), which folds say anything, and the goals over the folds."""

from __future__ import annotations

from typing import Any

import pytest

from bench.distillation_daily_goals import (
    HUMAN,
    best_arm,
    fold_goals,
    lever_arm,
    mixed_arm,
    summarize,
    tuned_arm,
)


def _arm(val_loss: float, accuracy: list[float], qwk: list[float]) -> dict[str, Any]:
    return {
        "val_loss": val_loss,
        "accuracy": sum(accuracy) / len(accuracy),
        "qwk": sum(qwk) / len(qwk),
        "per_seed": {"accuracy": accuracy, "qwk": qwk, "val_loss": [val_loss] * len(qwk)},
    }


def test_the_distilled_student_is_chosen_on_validation_loss_never_on_the_test_fold() -> None:
    results = {
        mixed_arm("daily", 25): _arm(0.90, [0.70, 0.70], [0.5, 0.5]),  # best on test...
        mixed_arm("daily", 50): _arm(0.80, [0.60, 0.60], [0.3, 0.3]),  # ...best on validation
        mixed_arm("strict", 25): _arm(0.10, [0.50, 0.50], [0.1, 0.1]),  # not the daily setting
    }
    assert best_arm(results, ["daily", "strict"], [25, 50]) == mixed_arm("daily", 50)
    assert best_arm(results, ["strict"], [25]) == mixed_arm("strict", 25)


def test_the_tuned_student_is_the_lever_with_the_lowest_validation_loss_never_the_best_test() -> (
    None
):
    best = mixed_arm("daily", 50)
    results = {
        best: _arm(0.80, [0.60, 0.60], [0.3, 0.3]),
        lever_arm("wider"): _arm(0.85, [0.75, 0.75], [0.6, 0.6]),  # best on test, not on val
        lever_arm("human weight 0.25"): _arm(0.70, [0.62, 0.62], [0.35, 0.35]),
        "ablation: hard teacher labels": _arm(0.10, [0.50, 0.50], [0.1, 0.1]),  # not a lever
    }
    assert tuned_arm(results, best) == lever_arm("human weight 0.25")
    assert tuned_arm({best: results[best]}, best) == best  # no lever ran: the best arm


def test_the_tuned_students_lift_is_reported_beside_the_default_students() -> None:
    record = _record(0, prior=0.60, teacher_acc=0.66, lift=0.01)
    lever = lever_arm("human weight 0.25")
    record["results"][lever] = _arm(0.5, [0.64, 0.66], [0.30, 0.32])
    record["tuned"] = {"arm": tuned_arm(record["results"], record["best"]["arm"])}
    goals = fold_goals(record)
    assert goals["tuned_arm"] == lever
    assert goals["lift_accuracy_points"] == pytest.approx(1.0)  # the default student's, unchanged
    assert goals["tuned_lift_accuracy_points"] == pytest.approx(4.0)
    assert goals["tuned_lift_qwk"] == pytest.approx(0.10)
    assert goals["tuned_student_over_teacher_qwk"] == pytest.approx(0.62)
    record["goals"] = goals
    judged = summarize({"folds": {"0": record}})["goals"]["on_all_folds"]
    assert judged["tuned_lift_accuracy_points"] == pytest.approx(4.0)


def _record(fold: int, prior: float, teacher_acc: float, lift: float) -> dict[str, Any]:
    best = mixed_arm("daily", 50)
    record = {
        "fold": fold,
        "complete": True,
        "split": {"test_prior_accuracy": prior},
        "best": {"arm": best},
        "results": {
            "teacher": {"accuracy": teacher_acc, "qwk": 0.5},
            HUMAN: _arm(1.0, [0.60, 0.62], [0.20, 0.22]),
            best: _arm(0.9, [0.60 + lift, 0.62 + lift], [0.20 + 3 * lift, 0.22 + 3 * lift]),
        },
        "speed": {"per_query": {"student_over_teacher": 60.0 + fold}},
    }
    record["goals"] = fold_goals(record)
    return record


def test_a_fold_whose_teacher_is_not_3_points_above_the_prior_says_nothing() -> None:
    folds = {
        "0": _record(0, prior=0.60, teacher_acc=0.66, lift=0.05),
        "1": _record(1, prior=0.60, teacher_acc=0.62, lift=-0.02),  # teacher near the prior
        "2": _record(2, prior=0.55, teacher_acc=0.60, lift=0.04),
    }
    assert folds["0"]["goals"]["lift_accuracy_points"] == pytest.approx(5.0)
    assert folds["0"]["goals"]["lift_qwk"] == pytest.approx(0.15)
    summary = summarize({"folds": folds})
    assert summary["folds_complete"] == 3 and summary["goals"]["at_least_3_folds"]
    assert summary["folds_that_say_something"] == [0, 2]
    assert summary["folds_that_say_nothing"] == [{"fold": 1, "teacher_minus_prior_points": 2.0}]
    assert summary["goals"]["teacher_3_points_above_prior_on_every_fold"] is False
    judged = summary["goals"]["on_folds_that_say_something"]
    assert judged["folds"] == 2 and judged["lift_accuracy_points"] == pytest.approx(4.5)
    assert judged["distilled_beats_human_by_3_points_and_0_10_qwk"] is True
    # Over every fold, fold 1's negative lift pulls the mean under the goal.
    assert (
        summary["goals"]["on_all_folds"]["distilled_beats_human_by_3_points_and_0_10_qwk"] is False
    )
    assert summary["goals"]["min_student_over_teacher_pairs_per_s_per_query"] == 60.0
    assert summary["goals"]["student_ge_50x_teacher_pairs_per_s_per_query"] is True


def test_an_unfinished_fold_is_left_out_of_the_summary() -> None:
    unfinished = {"fold": 3, "results": {}}
    assert summarize({"folds": {"3": unfinished}}) == {"folds_complete": 0}
