"""The ``human-fraction`` protocol of bench/distillation_scaling.py (issue 5): a teacher
trained on 10% of the training pairs labels the other 90%.

    .venv/bin/python bench/distillation_scaling.py --protocol human-fraction   # ~15 min, 2 CPUs

Protocol, on CrowdFlower (../shared/data/crowdflower, 4 levels):
* Test: one query-grouped fold (``--fold`` of GroupKFold(5) on the query, as in
  bench/teacher_crowdflower.py): its queries are never seen by the teacher or the students.
* Of the training pairs, ``--human-fraction`` (10%) keep their human labels (drawn at random,
  seeded); the other 90% are the "unlabeled log": their human labels are never used.
* The teacher (MiniLM-L6 LoRA cross-encoder, this repo's ``train_teacher``) is fine-tuned on the
  human 10% only, then labels the other 90% (soft labels) and the test fold.
* Students (this repo's features and ``fit_student``, default StudentConfig) train on: human
  labels only; human + teacher labels at 1x, 3x and all (~8x) the human amount; teacher labels
  only; and, as a ceiling, human labels on 100% of the training pairs. Early stopping on the
  human labels of validation queries (split by query hash, the teacher's own validation queries,
  whose unlabeled pairs are left out). Feature-group ablation on "human + all teacher".
* Speed: student pairs/s (features + network) vs teacher pairs/s on the same test pairs in the
  same run, at two granularities: one query's candidates per call (as served) and all pairs
  at once (offline, as daily labeling runs). The goal is judged on the lower ratio. Baseline in
  the same run: per query with the query encoder in eager PyTorch instead of ONNX Runtime.
Writes bench/results/distillation_scaling.json; bench/plot_distillation_scaling.py plots it.
Kept beside the ``daily-log`` protocol (issue 17) as the row it improves on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.crowdflower_folds import fold_specs, load_crowdflower
from bench.distillation_common import (
    HeldOutPairs,
    concat,
    fit_arm,
    load_item_store,
    measure_speed,
    rows_of,
    student_seeds,
    teacher_scorer,
)
from bench.machine import machine_info
from searchrel.config import StudentConfig, load_config
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS
from searchrel.features.pairs import assemble_inputs
from searchrel.schema import JUDGMENTS, SCALAR_FEATURES
from searchrel.splits import split_of
from searchrel.student.dataset import FeatureRows
from searchrel.student.train import fit_student
from searchrel.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("distillation_scaling")
K = CROWDFLOWER_LEVELS
GROUPS = {  # feature groups for the ablation: scalar feature names, or the embedding blocks
    "embeddings": None,
    "bm25_text_match": [
        n for n in SCALAR_FEATURES if n.startswith(("bm25_", "term_", "exact_", "fuzzy_"))
    ],
    "engagement": [n for n in SCALAR_FEATURES if n.startswith("item_")],
}


def drop_group(x: np.ndarray, dim: int, group: str) -> np.ndarray:
    """The inputs without one feature group (columns removed, not zeroed)."""
    if group == "embeddings":
        return x[:, 3 * dim :]
    names = GROUPS[group] or []
    drop = {3 * dim + SCALAR_FEATURES.index(n) for n in names}
    return x[:, [c for c in range(x.shape[1]) if c not in drop]]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="distillation_scaling.py --protocol human-fraction",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--fold", type=int, default=0, help="grouped test fold (0-4)")
    p.add_argument("--human-fraction", type=float, default=0.1)
    p.add_argument("--teacher-epochs", type=int, default=4)
    p.add_argument(
        "--teacher-patience", type=int, default=2, help="epochs without val-loss gain to stop"
    )
    p.add_argument("--max-length", type=int, default=64, help="teacher tokens (CPU budget)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--student-seeds", type=int, default=5, help="fits per student arm (mean, sd)")
    p.add_argument("--skip-speed", action="store_true", help="quality only (no timing section)")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/distillation_scaling.json")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_distillation")
    return p.parse_args(argv)


def run(args: argparse.Namespace, command: str, csvs: list[Path]) -> int:
    started = time.perf_counter()
    work = args.work_dir
    data = load_crowdflower(csvs, work)
    j = data.judgments
    spec = fold_specs(j, "grouped")[args.fold]
    rng = np.random.default_rng(args.seed)
    train_idx = spec.train_idx
    human_idx = np.sort(
        rng.choice(train_idx, int(len(train_idx) * args.human_fraction), replace=False)
    )
    cfg = load_config(
        overrides={
            "data": {
                "levels": K,
                "test_fraction": 0.0,
                "val_fraction": 0.15,
                "split_salt": f"distill-{args.fold}",
            },
            "teacher": {
                "fields": ["title", "description"],
                "max_length": args.max_length,
                "epochs": args.teacher_epochs,
                "resume": False,
                "patience": args.teacher_patience,
                "seed": args.seed,
            },
        }
    )
    split = np.array([split_of(q, cfg.data) for q in j["query"]])
    val_queries = set(j["query"].iloc[human_idx][split[human_idx] == "val"])
    pool_idx = np.setdiff1d(train_idx, human_idx)
    pool_idx = pool_idx[~j["query"].iloc[pool_idx].isin(val_queries).to_numpy()]
    h_train = human_idx[split[human_idx] == "train"]
    h_val = human_idx[split[human_idx] == "val"]
    all_train = train_idx[split[train_idx] == "train"]  # the 100%-human ceiling
    test_idx = spec.test_idx
    info: dict[str, Any] = {
        "test_pairs": len(test_idx),
        "test_queries": int(j["query"].iloc[test_idx].nunique()),
        "human_pairs": len(human_idx),
        "human_train_pairs": len(h_train),
        "human_val_pairs": len(h_val),
        "unlabeled_pool_pairs": len(pool_idx),
        # accuracy of always answering the test pairs' most common level
        "test_prior_accuracy": round(
            float(j["label"].iloc[spec.test_idx].value_counts(normalize=True).max()), 4
        ),
    }
    log.info("split: %s", info)

    # --- the teacher, on the human 10% only ------------------------------------------------
    from searchrel.teacher.train import train_teacher

    items_path = work / "items.parquet"
    write_table(data.items, items_path, "items")
    human_path = work / "human_judgments.parquet"
    write_table(
        j.iloc[human_idx][list(JUDGMENTS.names)].reset_index(drop=True), human_path, "judgments", K
    )
    t0 = time.perf_counter()
    teacher_summary = train_teacher(items_path, human_path, work / "teacher", cfg)
    teacher_train_s = time.perf_counter() - t0
    items_by_id = {r["item_id"]: r for r in data.items.to_pylist()}
    teacher = teacher_scorer(work / "teacher", items_by_id)

    def teacher_probs(idx: np.ndarray) -> np.ndarray:
        return teacher(list(j["query"].iloc[idx]), list(j["item_id"].iloc[idx]))

    pool_probs = teacher_probs(pool_idx)
    test_teacher = teacher_probs(test_idx)

    # --- features -----------------------------------------------------------------------------
    store, featurizer = load_item_store(data.items, work, cfg.features)
    needed = np.unique(np.concatenate([human_idx, pool_idx, all_train, test_idx]))
    rows = np.array([store.index[i] for i in j["item_id"].iloc[needed]])
    q, i, s = featurizer.featurize_many(list(j["query"].iloc[needed]), rows)
    x_all = assemble_inputs(q, i, s)
    pos = {int(k): n for n, k in enumerate(needed)}
    dim = store.dim

    def x_of(idx: np.ndarray) -> np.ndarray:
        return x_all[[pos[int(k)] for k in idx]]

    def onehot(idx: np.ndarray) -> np.ndarray:
        return np.eye(K, dtype=np.float32)[j["label"].iloc[idx].to_numpy() - 1]

    human_train = rows_of(x_of(h_train), onehot(h_train), "human", dim)
    human_val = rows_of(x_of(h_val), onehot(h_val), "human", dim)
    pool = rows_of(x_of(pool_idx), pool_probs, "teacher", dim)
    test = HeldOutPairs(
        x_of(test_idx),
        j["label"].iloc[test_idx].to_numpy(),
        j["query"].iloc[test_idx].to_numpy(),
        j["locale"].iloc[test_idx].to_numpy(),
        K,
    )

    scfg = StudentConfig()
    # One fit per seed: at a few hundred rows, the initial weights alone move QWK by several
    # hundredths, more than many of the differences between arms.
    seeds = student_seeds(args.seed, args.student_seeds)
    results: dict[str, Any] = {"teacher": {**test.score(test_teacher), "train_pairs": len(h_train)}}

    def student(name: str, train: FeatureRows, group: str | None = None) -> None:
        tr, va, xt = train, human_val, None
        if group:
            tr = rows_of(drop_group(train.x, dim, group), train.target, "teacher", dim)
            tr.source = train.source
            va = rows_of(drop_group(human_val.x, dim, group), human_val.target, "human", dim)
            xt = drop_group(test.x, dim, group)
        results[name] = fit_arm(tr, va, test, seeds, scfg, x_test=xt)
        log.info("%s: acc %.4f (sd %.4f) qwk %.4f", name, results[name]["accuracy"],
                 results[name]["sd"]["accuracy"], results[name]["qwk"])  # fmt: skip

    n_h = len(h_train)
    order = rng.permutation(len(pool))
    student("student: human only", human_train)
    for mult in (1, 3):
        take = order[: min(len(pool), mult * n_h)]
        student(f"student: human + teacher {mult}x", concat([human_train, pool.subset(take)]))
    everything = concat([human_train, pool])
    all_mult = round(len(pool) / n_h, 1)
    student(f"student: human + teacher all ({all_mult}x)", everything)
    student("student: teacher only", pool)
    ceiling = rows_of(x_of(all_train), onehot(all_train), "human", dim)
    student("ceiling: student on human labels of 100% of training pairs", ceiling)
    for group in GROUPS:
        student(f"ablation: human + teacher all, without {group}", everything, group)

    best = f"student: human + teacher all ({all_mult}x)"

    def speed_of_best() -> dict[str, Any]:
        net, _, _ = fit_student(everything, human_val, scfg, K)
        return measure_speed(
            net,
            store,
            featurizer,
            test.queries,
            j["item_id"].iloc[test_idx].to_numpy(),
            teacher,
            cfg.features,
        )

    speed = None if args.skip_speed else speed_of_best()
    t_acc, h_acc = results["teacher"]["accuracy"], results["student: human only"]["accuracy"]
    b_acc = results[best]["accuracy"]
    prior = float(j["label"].iloc[spec.test_idx].value_counts(normalize=True).max())
    # Paired by seed: the same initial weights with and without the teacher's labels.
    lifts = 100 * (
        np.array(results[best]["per_seed"]["accuracy"])
        - np.array(results["student: human only"]["per_seed"]["accuracy"])
    )
    result = {
        "command": command,
        "machine": machine_info(),
        "settings": {
            **vars(args),
            "out": str(args.out),
            "work_dir": str(args.work_dir),
            "teacher": cfg.teacher.model_dump(),
            "student": scfg.model_dump(),
        },
        "split": info,
        "teacher_training": {
            "seconds": round(teacher_train_s, 1),
            "epochs_run": teacher_summary["epochs_run"],
        },
        "results": results,
        "speed": speed,
        "headline": {
            "best_student": best,
            "student_over_teacher_accuracy": round(b_acc / t_acc, 4),
            "distillation_lift_accuracy_points": round(100 * (b_acc - h_acc), 2),
            "distillation_lift_sd_over_seeds": round(float(lifts.std()), 2),
            # Accuracy beside "always the most common level": a teacher at the prior makes
            # "student / teacher" trivially high (the prior alone would reach it).
            "teacher_minus_prior_points": round(100 * (t_acc - prior), 2),
            "best_student_minus_prior_points": round(100 * (b_acc - prior), 2),
            "prior_over_teacher_accuracy": round(prior / t_acc, 4),
            "paper": {
                "student_over_teacher_accuracy": 0.91,
                "human_to_distilled_accuracy": [0.484, 0.548],
            },
        },
        "goals": {
            "student_ge_95pct_of_teacher": b_acc / t_acc >= 0.95,
            "distillation_lifts_ge_3_points": b_acc - h_acc >= 0.03,
            # A teacher at the prior makes the 95% goal trivial and a "lift" only a climb back
            # to the prior (from a human-only student that over-fits below it): both flags say
            # whether the figures above mean anything.
            "teacher_beats_prior_by_1_point": t_acc - prior >= 0.01,
            "distilled_student_above_prior": b_acc > prior,
            "student_ge_50x_teacher_pairs_per_s": (
                None if speed is None else speed["student_over_teacher"] >= 50
            ),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {"headline": result["headline"], "goals": result["goals"], "speed": speed},
            indent=2,
            default=float,
        )
    )
    return 0
