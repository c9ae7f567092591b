"""The daily-log protocol's verdicts (bench/distillation_daily_log.py), as plain functions of
its JSON: which arm is "the distilled student", what each fold says, and the goals over the
folds (recomputed at every save, so a cut run's file is always summarised)."""

from __future__ import annotations

from typing import Any

import numpy as np

PRIOR_MARGIN = 0.03  # a fold says something only when the teacher beats the prior by this
GOAL_LIFT_ACCURACY, GOAL_LIFT_QWK = 0.03, 0.10
GOAL_TEACHER_QWK_SHARE, GOAL_SPEED_RATIO, GOAL_FOLDS = 0.90, 50.0, 3
HUMAN = "student: human only"
BEST_RULE = (
    "lowest mean validation loss (human labels of the validation queries) among the daily "
    "human + log arms"
)
TUNED_RULE = (
    "lowest mean validation loss (human labels of the validation queries) among the best arm "
    "and its student-lever arms"
)
LEVER_PREFIX = "lever: "  # arms that change the student's own settings on the best arm's rows


def lever_arm(name: str) -> str:
    return f"{LEVER_PREFIX}{name}"


def mixed_arm(setting: str, n: int) -> str:
    return f"student: human + log ({setting}, N={n})"


def log_only_arm(setting: str, n: int) -> str:
    return f"student: log only ({setting}, N={n})"


def best_arm(results: dict[str, Any], settings: list[str], sizes: list[int]) -> str:
    """The arm the ablations and the goals use: chosen on validation loss, never on the test
    fold. The daily arms when the daily setting ran, else every human + log arm."""
    pool = [mixed_arm(s, n) for s in settings for n in sizes if s == "daily"] or [
        mixed_arm(s, n) for s in settings for n in sizes
    ]
    return _lowest_val_loss(results, pool)


def tuned_arm(results: dict[str, Any], best: str) -> str:
    """The distilled student with its own settings (weights, width) chosen on validation loss
    among the best arm and the lever arms run on its rows; the best arm where none ran."""
    return _lowest_val_loss(results, [best, *(n for n in results if n.startswith(LEVER_PREFIX))])


def _lowest_val_loss(results: dict[str, Any], pool: list[str]) -> str:
    """The arm of ``pool`` with the lowest mean validation loss; ties go to the earlier one."""
    return min(pool, key=lambda name: (results[name]["val_loss"], pool.index(name)))


def _paired(results: dict[str, Any], a: str, b: str, metric: str) -> dict[str, float] | None:
    """a - b per seed (the same seeds), mean and sd; None where a metric is undefined."""
    x, y = results[a]["per_seed"][metric], results[b]["per_seed"][metric]
    if any(v is None for v in (*x, *y)):
        return None
    d = np.array(x, dtype=float) - np.array(y, dtype=float)
    return {"mean": float(d.mean()), "sd": float(d.std())}


def fold_goals(record: dict[str, Any]) -> dict[str, Any]:
    res = record["results"]
    best = record["best"]["arm"]
    prior = record["split"]["test_prior_accuracy"]
    teacher = res["teacher"]
    lift_acc = _paired(res, best, HUMAN, "accuracy")
    lift_qwk = _paired(res, best, HUMAN, "qwk")
    t_qwk, b_qwk = teacher.get("qwk"), res[best].get("qwk")
    speed = record.get("speed")
    tuned = record.get("tuned", {}).get("arm", best)
    tuned_acc = _paired(res, tuned, HUMAN, "accuracy")
    tuned_qwk = _paired(res, tuned, HUMAN, "qwk")
    tuned_own_qwk = res[tuned].get("qwk")
    return {
        "best_arm": best,
        "teacher_minus_prior_points": round(100 * (teacher["accuracy"] - prior), 2),
        "says_something": teacher["accuracy"] - prior >= PRIOR_MARGIN,
        "lift_accuracy_points": None if lift_acc is None else round(100 * lift_acc["mean"], 2),
        "lift_accuracy_points_sd_over_seeds": (
            None if lift_acc is None else round(100 * lift_acc["sd"], 2)
        ),
        "lift_qwk": None if lift_qwk is None else round(lift_qwk["mean"], 4),
        "lift_qwk_sd_over_seeds": None if lift_qwk is None else round(lift_qwk["sd"], 4),
        "student_over_teacher_qwk": (
            round(b_qwk / t_qwk, 4) if t_qwk and b_qwk is not None else None
        ),
        "student_over_teacher_accuracy": round(res[best]["accuracy"] / teacher["accuracy"], 4),
        "student_over_teacher_pairs_per_s_per_query": (
            None if not speed else speed["per_query"]["student_over_teacher"]
        ),
        "tuned_arm": tuned,
        "tuned_lift_accuracy_points": (
            None if tuned_acc is None else round(100 * tuned_acc["mean"], 2)
        ),
        "tuned_lift_qwk": None if tuned_qwk is None else round(tuned_qwk["mean"], 4),
        "tuned_student_over_teacher_qwk": (
            round(tuned_own_qwk / t_qwk, 4) if t_qwk and tuned_own_qwk is not None else None
        ),
    }


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _sd(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.std(kept, ddof=1)) if len(kept) > 1 else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Means over the complete folds (each fold's seed mean), and the goals judged on the folds
    that say something; a fold whose teacher is not 3 points above the prior is named."""
    folds = [f for f in result.get("folds", {}).values() if f.get("complete")]
    if not folds:
        return {"folds_complete": 0}
    informative = [f for f in folds if f["goals"]["says_something"]]
    names = [n for n in folds[0]["results"] if all(n in f["results"] for f in folds)]
    arms = {
        name: {
            **{
                m: _mean([f["results"][name].get(m) for f in folds])
                for m in ("accuracy", "qwk", "auroc_ge_2", "ndcg_at_20")
            },
            "sd_over_folds": {
                m: _sd([f["results"][name].get(m) for f in folds]) for m in ("accuracy", "qwk")
            },
            "rows_by_source": folds[0]["results"][name].get("rows_by_source"),
        }
        for name in names
    }
    prior = _mean([f["split"]["test_prior_accuracy"] for f in folds])

    def judged(fs: list[dict[str, Any]]) -> dict[str, Any]:
        if not fs:
            return {"folds": 0}
        lift_acc = _mean([f["goals"]["lift_accuracy_points"] for f in fs])
        lift_qwk = _mean([f["goals"]["lift_qwk"] for f in fs])
        teacher_qwk = _mean([f["results"]["teacher"].get("qwk") for f in fs])
        best_qwk = _mean([f["results"][f["best"]["arm"]].get("qwk") for f in fs])
        share = best_qwk / teacher_qwk if teacher_qwk and best_qwk is not None else None
        tuned_qwk = _mean([f["results"][f["goals"]["tuned_arm"]].get("qwk") for f in fs])
        return {
            "folds": len(fs),
            "lift_accuracy_points": lift_acc,
            "lift_qwk": lift_qwk,
            "student_over_teacher_qwk": share,
            "distilled_beats_human_by_3_points_and_0_10_qwk": (
                None
                if lift_acc is None or lift_qwk is None
                else lift_acc >= 100 * GOAL_LIFT_ACCURACY and lift_qwk >= GOAL_LIFT_QWK
            ),
            "distilled_reaches_90pct_of_teacher_qwk": (
                None if share is None else share >= GOAL_TEACHER_QWK_SHARE
            ),
            "tuned_lift_accuracy_points": _mean(
                [f["goals"]["tuned_lift_accuracy_points"] for f in fs]
            ),
            "tuned_lift_qwk": _mean([f["goals"]["tuned_lift_qwk"] for f in fs]),
            "tuned_student_over_teacher_qwk": (
                tuned_qwk / teacher_qwk if teacher_qwk and tuned_qwk is not None else None
            ),
        }

    ratios = [
        f["goals"]["student_over_teacher_pairs_per_s_per_query"]
        for f in folds
        if f["goals"]["student_over_teacher_pairs_per_s_per_query"] is not None
    ]
    return {
        "folds_complete": len(folds),
        "folds_that_say_something": [f["fold"] for f in informative],
        "folds_that_say_nothing": [
            {
                "fold": f["fold"],
                "teacher_minus_prior_points": f["goals"]["teacher_minus_prior_points"],
            }
            for f in folds
            if not f["goals"]["says_something"]
        ],
        "test_prior_accuracy": prior,
        "best_arm_per_fold": {str(f["fold"]): f["best"]["arm"] for f in folds},
        "tuned_arm_per_fold": {str(f["fold"]): f["goals"]["tuned_arm"] for f in folds},
        "arms": arms,
        "goals": {
            "at_least_3_folds": len(folds) >= GOAL_FOLDS,
            "teacher_3_points_above_prior_on_every_fold": all(
                f["goals"]["says_something"] for f in folds
            ),
            "on_folds_that_say_something": judged(informative),
            "on_all_folds": judged(folds),
            "student_ge_50x_teacher_pairs_per_s_per_query": (
                min(ratios) >= GOAL_SPEED_RATIO if ratios else None
            ),
            "min_student_over_teacher_pairs_per_s_per_query": min(ratios) if ratios else None,
        },
        "paper": {"human_to_distilled_accuracy": [0.484, 0.548], "student_over_teacher": 0.91},
    }
