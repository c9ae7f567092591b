"""Teacher vs baselines on CrowdFlower (issue 3): 5-fold CV, two protocols, one JSON.

    .venv/bin/python bench/teacher_crowdflower.py                      # everything (hours on CPU)
    .venv/bin/python bench/teacher_crowdflower.py --folds 1 --max-length 64 --epochs 2
    .venv/bin/python bench/teacher_crowdflower.py --protocol random --folds 1 \
        --models prior embedding --teacher mpnet_full=bench/configs/teacher_mpnet_full.yaml \
        --resume                           # a teacher variant per YAML; finished rows are kept
    .venv/bin/python bench/plot_teacher_crowdflower.py                 # docs/img/...png

Protocols (see bench/crowdflower_folds.py): ``grouped`` = GroupKFold(5) on the query (test
queries never trained on, the paper's question) and ``random`` = the shipped CSV folds paired
into five test folds (test queries seen in training, as in the 2015 Kaggle competition).

Rows (models), all emitting 4-level probabilities scored by ``searchrel.metrics.evaluate``:

* ``prior``: the training fold's weighted label distribution for every pair (the floor).
* ``bm25``: BM25 (k1, b from the feature config) of the query against title + description,
  IDF over the whole item catalogue (no labels), mapped to 4 levels by a 1-feature
  multinomial logistic regression fitted on the training fold.
* ``embedding``: frozen all-MiniLM-L6-v2 bi-encoder vectors of query and item text (title +
  description) -> multinomial logistic regression on [q, i, q*i, cos] (the paper's
  SearchSAGE-embedding row: frozen embeddings, a learned head).
* ``teacher``: the MiniLM LoRA cross-encoder through ``train_teacher`` + ``TeacherScorer``,
  fields title + description (all that CrowdFlower items carry).
* ``teacher_title``: the same with fields = [title] (ablation).
* ``--ensemble NAME=A,B``: the ensemble of this fold's teacher rows A and B (their mean
  probabilities, through ``searchrel.teacher.ensemble``); its train time is the members' sum.
* ``--teacher NAME=CONFIG.yaml``: a teacher variant, its ``teacher:`` section read from the
  YAML (full fine-tuning, MPNet, the ordinal objective, an ensemble via ``members``); fields,
  budgets and training settings come from the YAML, the bench's CLI overrides still apply.

``--resume`` keeps every (protocol, fold, model) row already in ``--out`` and runs the rest, so
a long run that was cut (or one extended by a new variant) continues where it stopped.

Every model is read two ways: the argmax level (``accuracy``, ``qwk``) and the expected score
decoded with ``K - 1`` cutoffs that ``searchrel.metrics.fit_qwk_cutoffs`` fits for QWK on the
same model's predictions for the validation queries (``accuracy_cutoffs``, ``qwk_cutoffs``):
the test fold never chooses them. A refit teacher (``teacher.refit``) has trained on the
validation queries, so its validation figures and cutoffs come from the predictions its run
without them saved.

Each fold writes its training judgments to ``work_dir/<protocol>/fold<k>/judgments.parquet``
(the test fold's rows are never in it). ``train_teacher`` splits what it is given by query
hash; here ``data.test_fraction`` is 0 so it holds out no test queries (the fold does),
and ``--val-fraction`` of the training queries (per-fold salt) are its early-stopping set.
The baselines train on exactly the teacher's training pairs (the validation queries are left
out for them too), with the same rater weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import cohen_kappa_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tqdm.auto import tqdm  # noqa: E402
from tqdm.contrib.logging import logging_redirect_tqdm  # noqa: E402

from bench.crowdflower_folds import (  # noqa: E402
    N_SPLITS,
    PROTOCOLS,
    CrowdFlower,
    FoldSpec,
    load_crowdflower,
    subsample,
)
from bench.crowdflower_folds import fold_specs as make_fold_specs  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import Config, DataConfig, load_config, shared_dir  # noqa: E402
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS, find_crowdflower_csvs  # noqa: E402
from searchrel.metrics import evaluate, fit_qwk_cutoffs  # noqa: E402
from searchrel.schema import JUDGMENTS  # noqa: E402
from searchrel.scores import expected_score  # noqa: E402
from searchrel.splits import split_of  # noqa: E402
from searchrel.tables import read_table, write_table  # noqa: E402
from searchrel.text import clean_text, field_text, tokenize  # noqa: E402

log = logging.getLogger("teacher_crowdflower")

LEVELS = CROWDFLOWER_LEVELS
MODELS = ("prior", "bm25", "embedding", "teacher", "teacher_title")
TEACHER_FIELDS = {"teacher": ["title", "description"], "teacher_title": ["title"]}
BASELINES = ("prior", "bm25", "embedding")  # the rows that are not a teacher
METRICS = (
    "accuracy",
    "auroc_ge_2",
    "auroc_ge_3",
    "auroc_ge_4",
    "qwk",
    "ndcg_at_20",
    "accuracy_cutoffs",
    "qwk_cutoffs",
)
KEEP = (
    "n",
    *METRICS,
    "ndcg_queries",
    "ndcg_queries_skipped",
    "confusion_matrix",
    "label_distribution",
    "predicted_distribution",
    "cutoffs",
    "confusion_matrix_cutoffs",
    "predicted_distribution_cutoffs",
)
VARIANT_SETTINGS = {  # what a teacher row records of its config
    *("base_model", "finetune", "objective", "ordinal_weight", "members", "epochs"),
    *("learning_rate", "layer_decay", "warmup", "batch_size", "max_length", "field_max_tokens"),
    *("precision", "bucket_by_length", "lora_r", "refit"),
}
TIMINGS = ("train_seconds", "score_seconds", "score_pairs_per_s")
NO_TEST_QUERIES = 0.0  # the bench's folds hold out the test rows, not train_teacher
EMBED_CHARS = 1000  # item text cut for the bi-encoder, as the feature store does
REFERENCES = {
    "paper_teacher": {
        "source": "Pinterest search relevance distillation, arXiv 2410.17152 (Llama-3-8B teacher)",
        "levels": 5,
        "accuracy": 0.602,
        "auroc_ge_3": 0.930,
        "auroc_ge_4": 0.904,
        "auroc_ge_5": 0.908,
        "note": (
            "5-level Pinterest data: its AUROC >=3/>=4/>=5 are not CrowdFlower's >=2/>=3/>=4 "
            "(4 levels, 61% of pairs at level 4, so a constant predictor already reaches ~0.61 "
            "accuracy here); compare the shape, not the decimals"
        ),
    },
    "paper_teacher_vs_searchsage_accuracy_gain_pct": 19.7,
    "kaggle_2015_crowdflower": {
        "metric": "quadratic weighted kappa, private leaderboard",
        "winner_qwk": 0.72189,
        "best_single_model_qwk": 0.70768,
        "note": "the competition's test queries were all seen in training: compare with random",
    },
}


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def _full_probs(clf: Any, x: np.ndarray) -> np.ndarray:
    """predict_proba as (n, LEVELS): a level the training fold lacked gets probability 0."""
    out = np.zeros((len(x), LEVELS), dtype=np.float64)
    out[:, np.asarray(clf.classes_, dtype=int) - 1] = clf.predict_proba(x)
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(x, y, logisticregression__sample_weight=w)
    return clf


class BM25:
    """BM25 of a query against each item's title + description; IDF over all items."""

    def __init__(self, items: list[dict[str, Any]], k1: float, b: float):
        self.k1, self.b = k1, b
        self.index = {it["item_id"]: i for i, it in enumerate(items)}
        self.counts = [
            Counter(tokenize(f"{field_text(it, 'title')} {field_text(it, 'description')}"))
            for it in items
        ]
        self.lengths = np.array([sum(c.values()) for c in self.counts], dtype=np.float64)
        self.avgdl = max(float(self.lengths.mean()), 1e-6)
        df = Counter(t for c in self.counts for t in c)
        n = len(items)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def scores(self, queries: list[str], item_ids: list[str]) -> np.ndarray:
        out = np.zeros(len(queries), dtype=np.float64)
        for j, (q, item_id) in enumerate(zip(queries, item_ids, strict=True)):
            r = self.index[item_id]
            c, norm = self.counts[r], self.k1 * (1 - self.b + self.b * self.lengths[r] / self.avgdl)
            for t in set(tokenize(q)):
                tf = c.get(t, 0)
                if tf:
                    out[j] += self.idf.get(t, 0.0) * tf * (self.k1 + 1) / (tf + norm)
        return out


def embed_text(item: dict[str, Any]) -> str:
    return clean_text([item.get("title"), item.get("description")])[:EMBED_CHARS]


def embedding_features(q: np.ndarray, i: np.ndarray) -> np.ndarray:
    prod = q * i
    return np.hstack([q, i, prod, prod.sum(axis=1, keepdims=True)])


# --------------------------------------------------------------------------------------------
# One fold
# --------------------------------------------------------------------------------------------


class FoldPlan:
    """Which rows one fold trains on, validates on (the teacher) and tests on."""

    def __init__(self, spec: FoldSpec, data: CrowdFlower, args: argparse.Namespace):
        self.spec = spec
        self.protocol, self.fold = spec.protocol, spec.fold
        j = data.judgments
        pool = subsample(spec.train_idx, args.max_train_pairs, args.seed + spec.fold)
        self.data_cfg = DataConfig(
            levels=LEVELS,
            test_fraction=NO_TEST_QUERIES,
            val_fraction=args.val_fraction,
            split_salt=f"crowdflower-{spec.protocol}-{spec.fold}",
        )
        splits = np.array([split_of(q, self.data_cfg) for q in j["query"].iloc[pool]])
        if (splits == "test").any():
            raise AssertionError("a query hashed into the teacher's test split; lower it further")
        self.pool_idx = pool  # what train_teacher is given
        self.train_idx = pool[splits == "train"]
        self.val_idx = pool[splits == "val"]
        self.test_idx = subsample(spec.test_idx, args.max_test_pairs, args.seed)
        trained = set(j["qkey"].iloc[self.train_idx])
        test_q = j["qkey"].iloc[self.test_idx]
        self.info = {
            **spec.describe,
            "train_pool_pairs": len(pool),
            "train_pairs": len(self.train_idx),
            "val_pairs": len(self.val_idx),
            "val_queries": int(j["qkey"].iloc[self.val_idx].nunique()),
            "test_pairs": len(self.test_idx),
            "test_pairs_query_trained_share": float(test_q.isin(trained).mean()),
        }


class Runner:
    def __init__(self, data: CrowdFlower, args: argparse.Namespace, cfg: Config):
        self.data, self.args, self.cfg = data, args, cfg
        self.items = data.items.to_pylist()
        self.items_by_id = {it["item_id"]: it for it in self.items}
        self.work = Path(args.work_dir)
        self.items_path = self.work / "items.parquet"
        write_table(data.items, self.items_path, "items")
        self._bm25: BM25 | None = None
        self._written: set[Path] = set()
        self.qvec: dict[str, np.ndarray] = {}
        self.ivec: dict[str, np.ndarray] = {}
        self.embed_seconds_per_item = 0.0
        self.embed_seconds_per_query = 0.0

    # -- shared inputs ------------------------------------------------------------------------

    def rows(self, idx: np.ndarray) -> pd.DataFrame:
        return self.data.judgments.iloc[idx]

    @property
    def bm25(self) -> BM25:
        if self._bm25 is None:
            self._bm25 = BM25(self.items, self.cfg.features.bm25_k1, self.cfg.features.bm25_b)
        return self._bm25

    def precompute_embeddings(self, plans: list[FoldPlan]) -> dict[str, Any]:
        """Encode, once, every query and item that some fold trains or tests on (timed)."""
        from searchrel.features.embedder import Embedder

        idx = np.unique(np.concatenate([np.r_[p.train_idx, p.val_idx, p.test_idx] for p in plans]))
        rows = self.rows(idx)
        item_ids = sorted(set(rows["item_id"]))
        queries = sorted(set(rows["query"]))
        embedder = Embedder.from_config(self.cfg.features)
        if self.args.embed_max_length:
            embedder.model.max_seq_length = self.args.embed_max_length
        log.info("embedding %d items and %d queries", len(item_ids), len(queries))
        started = time.perf_counter()
        ivecs = embedder.encode([embed_text(self.items_by_id[i]) for i in item_ids], progress=True)
        item_s = time.perf_counter() - started
        started = time.perf_counter()
        qvecs = embedder.encode([clean_text(q) for q in queries])
        query_s = time.perf_counter() - started
        self.ivec = dict(zip(item_ids, ivecs, strict=True))
        self.qvec = dict(zip(queries, qvecs, strict=True))
        self.embed_seconds_per_item = item_s / max(len(item_ids), 1)
        self.embed_seconds_per_query = query_s / max(len(queries), 1)
        return {
            "items": len(item_ids),
            "queries": len(queries),
            "item_seconds": round(item_s, 2),
            "items_per_s": round(len(item_ids) / item_s, 1) if item_s else None,
            "query_seconds": round(query_s, 2),
            "max_seq_length": int(embedder.model.max_seq_length),
        }

    # -- models: each returns (test probs, train seconds, score seconds, extra) --------------
    # extra["_val_probs"]: the same model's probs on the validation queries' pairs, from which
    # run() fits the QWK cutoffs (never on test rows).

    def run_prior(self, plan: FoldPlan) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        started = time.perf_counter()
        train = self.rows(plan.train_idx)
        weight = train["weight"].fillna(1.0)
        dist = np.bincount(train["label"] - 1, weights=weight, minlength=LEVELS)
        dist = dist / dist.sum()
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        probs = np.tile(dist, (len(plan.test_idx), 1))
        score_s = time.perf_counter() - started
        return probs, train_s, score_s, {"_val_probs": np.tile(dist, (len(plan.val_idx), 1))}

    def _bm25_x(self, idx: np.ndarray) -> np.ndarray:
        rows = self.rows(idx)
        return self.bm25.scores(list(rows["query"]), list(rows["item_id"]))[:, None]

    def run_bm25(self, plan: FoldPlan) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        _ = self.bm25  # the IDF table is catalogue-wide and label-free: not part of training time
        started = time.perf_counter()
        train = self.rows(plan.train_idx)
        clf = _fit_logistic(
            self._bm25_x(plan.train_idx),
            train["label"].to_numpy(),
            train["weight"].fillna(1.0).to_numpy(),
            self.args.seed,
        )
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        probs = _full_probs(clf, self._bm25_x(plan.test_idx))
        score_s = time.perf_counter() - started
        return probs, train_s, score_s, {"_val_probs": _full_probs(clf, self._bm25_x(plan.val_idx))}

    def _embed_x(self, idx: np.ndarray) -> np.ndarray:
        rows = self.rows(idx)
        q = np.stack([self.qvec[x] for x in rows["query"]])
        i = np.stack([self.ivec[x] for x in rows["item_id"]])
        return embedding_features(q, i)

    def run_embedding(self, plan: FoldPlan) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        started = time.perf_counter()
        train = self.rows(plan.train_idx)
        clf = _fit_logistic(
            self._embed_x(plan.train_idx),
            train["label"].to_numpy(),
            train["weight"].fillna(1.0).to_numpy(),
            self.args.seed,
        )
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        probs = _full_probs(clf, self._embed_x(plan.test_idx))
        head_s = time.perf_counter() - started
        test = self.rows(plan.test_idx)
        # Scoring cost = the head + encoding the fold's test items and queries (measured once
        # for all folds in precompute_embeddings, charged here at the measured rate).
        encode_s = (
            test["item_id"].nunique() * self.embed_seconds_per_item
            + test["query"].nunique() * self.embed_seconds_per_query
        )
        extra = {
            "head_score_seconds": round(head_s, 3),
            "_val_probs": _full_probs(clf, self._embed_x(plan.val_idx)),
        }
        return probs, train_s, head_s + encode_s, extra

    def _write_fold_judgments(self, plan: FoldPlan) -> Path:
        path = self.work / plan.protocol / f"fold{plan.fold}" / "judgments.parquet"
        if path not in self._written:  # once per run: a file from an older run may differ
            self._written.add(path)
            frame = self.rows(plan.pool_idx)[list(JUDGMENTS.names)].reset_index(drop=True)
            write_table(frame, path, "judgments", LEVELS)
        return path

    def teacher_config(self, name: str, plan: FoldPlan) -> Config:
        a = self.args
        teacher: dict[str, Any] = {"resume": False}
        if name in TEACHER_FIELDS:  # a variant's YAML keeps its own seed (ensembles of seeds)
            teacher.update(fields=TEACHER_FIELDS[name], seed=a.seed)
        for key in ("epochs", "max_length", "field_max_tokens", "batch_size", "learning_rate"):
            if getattr(a, key) is not None:
                teacher[key] = getattr(a, key)
        return load_config(
            a.teacher_variants.get(name, a.config),
            overrides={"data": plan.data_cfg.model_dump(), "teacher": teacher},
        )

    def run_teacher(
        self, plan: FoldPlan, name: str
    ) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        from searchrel.teacher.train import train_teacher

        judgments_path = self._write_fold_judgments(plan)
        cfg = self.teacher_config(name, plan)
        out = self.work / plan.protocol / f"fold{plan.fold}" / name
        if out.exists():
            shutil.rmtree(out)  # never resume: the train time must be a whole run's
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        summary = train_teacher(self.items_path, judgments_path, out, cfg)
        train_s = time.perf_counter() - started
        peak_train = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        held_out = summary.get("held_out", summary)  # a refit's counts are its first run's
        if held_out["train_pairs"] != len(plan.train_idx) or held_out["val_pairs"] != len(
            plan.val_idx
        ):
            raise AssertionError(f"train_teacher split differs from the plan: {summary}")
        probs, score_s, extra = self.score_teacher(plan, name, out, cfg.teacher.label_batch_size)
        t = cfg.teacher
        extra.update(
            fields=list(t.fields),
            teacher_config=t.model_dump(include=VARIANT_SETTINGS),
            epochs_run=summary["epochs_run"],
            best_val_loss=summary.get("best_val_loss"),
            history=summary.get("history") or summary.get("member_history"),
            held_out_history=summary.get("held_out", {}).get("history"),
            train_loop_seconds=summary["seconds"],
            train_pairs_per_s=summary.get("train_pairs_per_s"),
            quantize=t.quantize,
            base_model=t.base_model,
        )
        if cuda:
            extra["gpu"] = torch.cuda.get_device_name()
            extra["peak_gpu_memory_gib_train"] = round(peak_train or 0.0, 3)
            extra["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        return probs, train_s, score_s, extra

    def run_ensemble(
        self, plan: FoldPlan, name: str, done: dict[str, Any]
    ) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        """The ensemble of this fold's trained teacher rows (``--ensemble NAME=A,B``), through
        ``teacher ensemble``'s ``write_ensemble`` and ``load_scorer``; its training cost is the
        members' (they trained for their own rows)."""
        from searchrel.teacher.ensemble import write_ensemble

        rows = self.args.ensembles[name]
        missing = [r for r in rows if r not in done]
        if missing:
            raise SystemExit(f"--ensemble {name}: rows {missing} did not run on this fold")
        fold_dir = self.work / plan.protocol / f"fold{plan.fold}"
        out = fold_dir / name
        shutil.rmtree(out, ignore_errors=True)
        write_ensemble(out, [fold_dir / r for r in rows])
        probs, score_s, extra = self.score_teacher(plan, name, out, 64)
        extra["members"] = rows
        return probs, sum(done[r]["train_seconds"] for r in rows), score_s, extra

    def score_teacher(
        self, plan: FoldPlan, name: str, out: Path, batch_size: int
    ) -> tuple[np.ndarray, float, dict[str, Any]]:
        """The saved teacher (or ensemble) at ``out`` on the test pairs (timed) and the
        validation pairs (the cutoffs and the validation figures that choose settings)."""
        from searchrel.teacher.ensemble import load_scorer
        from searchrel.teacher.train import PREDICTIONS_FILE

        test = self.rows(plan.test_idx)
        scorer = load_scorer(out)
        started = time.perf_counter()
        texts = scorer.item_texts([self.items_by_id[i] for i in test["item_id"]])
        with tqdm(total=len(test), desc=f"{name} scoring", unit="pair", leave=False) as bar:
            probs = scorer.predict_proba(
                list(test["query"]), texts, batch_size=batch_size, progress=bar.update
            )
        score_s = time.perf_counter() - started
        val = self.rows(plan.val_idx)
        if (out / PREDICTIONS_FILE).is_file():
            val_probs = self.saved_val_probs(out / PREDICTIONS_FILE, val)
        else:
            val_probs = scorer.predict_proba(
                list(val["query"]),
                scorer.item_texts([self.items_by_id[i] for i in val["item_id"]]),
                batch_size=batch_size,
            )
        val_pred = val_probs.argmax(axis=1) + 1
        val_true = val["label"].to_numpy()
        extra = {
            "_val_probs": val_probs.astype(np.float64),
            "val_accuracy": float((val_pred == val_true).mean()),
            "val_qwk": float(cohen_kappa_score(val_true, val_pred, weights="quadratic")),
            "device": str(scorer.device),
            "teacher_version": scorer.version,
        }
        return probs.astype(np.float64), score_s, extra

    @staticmethod
    def saved_val_probs(path: Path, val: pd.DataFrame) -> np.ndarray:
        """The validation probabilities training saved (a refit teacher's come from its run
        without the validation queries), in the order of ``val``."""
        saved = read_table(path, "validation_predictions", LEVELS).table.to_pandas()
        by_key = {
            (q, loc, i): p
            for q, loc, i, p in zip(
                saved["query"], saved["locale"], saved["item_id"], saved["probs"], strict=True
            )
        }
        keys = list(zip(val["query"], val["locale"], val["item_id"], strict=True))
        if len(by_key) != len(keys) or any(k not in by_key for k in keys):
            raise AssertionError(f"{path} does not hold this fold's validation pairs")
        return np.array([by_key[k] for k in keys], dtype=np.float64)

    def run(self, model: str, plan: FoldPlan, done: dict[str, Any]) -> dict[str, Any]:
        if model in self.args.ensembles:
            probs, train_s, score_s, extra = self.run_ensemble(plan, model, done)
        elif model in TEACHER_FIELDS or model in self.args.teacher_variants:
            probs, train_s, score_s, extra = self.run_teacher(plan, model)
        else:
            probs, train_s, score_s, extra = getattr(self, f"run_{model}")(plan)
        probs = probs / probs.sum(axis=1, keepdims=True)
        val_probs = extra.pop("_val_probs")
        val_probs = val_probs / val_probs.sum(axis=1, keepdims=True)
        cutoffs = fit_qwk_cutoffs(
            self.rows(plan.val_idx)["label"].to_numpy(), expected_score(val_probs), LEVELS
        )
        test = self.rows(plan.test_idx)
        metrics = evaluate(
            test["label"].to_numpy(),
            probs,
            test["query"],
            test["locale"],
            LEVELS,
            cutoffs=cutoffs,
        )
        result = {k: metrics.get(k) for k in KEEP}
        result.update(
            train_seconds=round(train_s, 3),
            score_seconds=round(score_s, 3),
            score_pairs_per_s=round(len(test) / score_s, 1) if score_s > 0 else None,
            **extra,
        )
        return result


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def mean_std(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample std (ddof 1; None with one fold) over the folds that define the value."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "folds": 0}
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return {"mean": float(np.mean(vals)), "std": std, "folds": len(vals)}


def summarize(folds: list[dict[str, Any]], models: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        runs = [f["models"][model] for f in folds if model in f["models"]]
        if runs:
            out[model] = {k: mean_std([r.get(k) for r in runs]) for k in (*METRICS, *TIMINGS)}
    return out


def teacher_vs_embedding(folds: list[dict[str, Any]], teacher: str = "teacher") -> dict[str, Any]:
    """Teacher accuracy / embedding accuracy: the paper's +19.7% (vs SearchSAGE embeddings)."""
    both = [f["models"] for f in folds if teacher in f["models"] and "embedding" in f["models"]]
    if not both:
        return {}
    per_fold = [m[teacher]["accuracy"] / m["embedding"]["accuracy"] for m in both]
    # Means over the folds both ran: a row of one fold is not set against five folds' baseline.
    t = float(np.mean([m[teacher]["accuracy"] for m in both]))
    e = float(np.mean([m["embedding"]["accuracy"] for m in both]))
    ratio = t / e if e else None
    return {
        "ratio_of_means": ratio,
        "gain_pct": None if ratio is None else 100 * (ratio - 1),
        "per_fold": per_fold,
        "paper_gain_pct": REFERENCES["paper_teacher_vs_searchsage_accuracy_gain_pct"],
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both")
    p.add_argument("--folds", type=int, default=N_SPLITS, help="test folds to run (of 5)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="NAME=CONFIG.yaml",
        help="a teacher variant row: its teacher section from the YAML (repeatable)",
    )
    p.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="NAME=ROW,ROW[,...]",
        help="an ensemble row of this run's teacher rows, scored after them (repeatable)",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out; run the rest"
    )
    p.add_argument("--epochs", type=int, help="teacher epochs (default: the config's)")
    p.add_argument("--max-length", type=int, help="teacher tokens (default: the config's)")
    p.add_argument("--field-max-tokens", type=int, help="teacher per-field token budget")
    p.add_argument("--batch-size", type=int, help="teacher batch size")
    p.add_argument("--learning-rate", type=float, help="teacher learning rate")
    p.add_argument("--max-train-pairs", type=int, help="subsample each training fold (CPU)")
    p.add_argument("--max-test-pairs", type=int, help="subsample each test fold (smoke only)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="teacher early-stop queries")
    p.add_argument("--embed-max-length", type=int, help="bi-encoder tokens (default: 256)")
    p.add_argument("--config", type=Path, help="searchrel YAML (default: built-in defaults)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's); on a CPU shared with other jobs 1 can be "
        "several times faster than oversubscribed cores",
    )
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_teacher_crowdflower")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "teacher_crowdflower.json"
    )
    args = p.parse_args(argv)
    if not 1 <= args.folds <= N_SPLITS:
        p.error(f"--folds must lie in 1..{N_SPLITS}")
    if not 0 < args.val_fraction < 1:
        p.error("--val-fraction must lie in (0, 1)")
    args.teacher_variants = {}
    for spec in args.teacher:
        name, sep, path = spec.partition("=")
        if not sep or not name or name in MODELS or not Path(path).is_file():
            p.error(f"--teacher {spec!r}: want NAME=CONFIG.yaml, a new name and a file")
        args.teacher_variants[name] = Path(path)
    args.ensembles = {}
    for spec in args.ensemble:
        name, sep, rows = spec.partition("=")
        members = [r for r in rows.split(",") if r]
        if not sep or not name or len(members) < 2:
            p.error(f"--ensemble {spec!r}: want NAME=ROW,ROW[,...] (two rows or more)")
        args.ensembles[name] = members
    args.rows = [*args.models, *args.teacher_variants, *args.ensembles]
    return args


def settings_of(args: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    t = cfg.teacher
    pick = lambda v, d: d if v is None else v  # noqa: E731
    return {
        "protocols": PROTOCOLS if args.protocol == "both" else [args.protocol],
        "folds_run": args.folds,
        "n_splits": N_SPLITS,
        "models": args.rows,
        "teacher_variants": {k: str(v) for k, v in args.teacher_variants.items()},
        "ensembles": args.ensembles,
        "teacher": {
            "base_model": t.base_model,
            "epochs": pick(args.epochs, t.epochs),
            "max_length": pick(args.max_length, t.max_length),
            "field_max_tokens": pick(args.field_max_tokens, t.field_max_tokens),
            "batch_size": pick(args.batch_size, t.batch_size),
            "learning_rate": pick(args.learning_rate, t.learning_rate),
            "lora_r": t.lora_r,
            "patience": t.patience,
            "use_weights": t.use_weights,
            "fields": TEACHER_FIELDS,
        },
        "embedding": {"embedder": cfg.features.embedder, "head": "logreg on [q, i, q*i, cos]"},
        "bm25": {"k1": cfg.features.bm25_k1, "b": cfg.features.bm25_b, "head": "1-feature logreg"},
        "max_train_pairs": args.max_train_pairs,
        "max_test_pairs": args.max_test_pairs,
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "threads": args.threads,
        "config": str(args.config) if args.config else None,
        "folds_how": {
            "grouped": "sklearn GroupKFold(5) on the normalised query (no shuffling)",
            "random": "the 10 CSV folds in file order, paired (1,2), (3,4), ..., (9,10)",
        },
        "training_rows": (
            "training fold (optionally subsampled) minus the teacher's validation queries "
            "(query hash, per-fold salt); every model trains on those same pairs"
        ),
        "std": "sample std over folds (ddof 1); null with one fold",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    csvs = find_crowdflower_csvs(shared_dir(cfg))
    if not csvs:
        print(f"skip: no CrowdFlower CSVs under {shared_dir(cfg)}/data/crowdflower")
        return 0
    started = time.perf_counter()
    command = "python bench/teacher_crowdflower.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    data = load_crowdflower(csvs, Path(args.work_dir))
    j = data.judgments
    protocols = list(PROTOCOLS) if args.protocol == "both" else [args.protocol]
    plans = [
        FoldPlan(spec, data, args)
        for protocol in protocols
        for spec in make_fold_specs(j, protocol)[: args.folds]
    ]
    runner = Runner(data, args, cfg)
    result: dict[str, Any] = {
        "command": command.strip(),
        "machine": machine_info(),
        "settings": settings_of(args, cfg),
        "data": {
            "csv_files": [str(p) for p in csvs],
            "pairs": len(j),
            "queries": int(j["qkey"].nunique()),
            "label_counts": {str(k): int((j["label"] == k).sum()) for k in range(1, LEVELS + 1)},
        },
        "references": REFERENCES,
        "protocols": {p: {"folds": []} for p in protocols},
    }
    resumed = args.resume and args.out.is_file()
    old = json.loads(args.out.read_text(encoding="utf-8")) if resumed else {}
    earlier = _rows_by_fold(old)
    if earlier:
        result["earlier_commands"] = earlier_commands(old)
        keep_unplanned_folds(result["protocols"], old, {(p.protocol, p.fold) for p in plans})
    if any("embedding" not in earlier.get((p.protocol, p.fold), {}) for p in plans) and (
        "embedding" in args.models
    ):
        result["embedding_encode"] = runner.precompute_embeddings(plans)
    elif earlier:  # the figure of the run that encoded them
        result["embedding_encode"] = old.get("embedding_encode")

    def write() -> None:
        result["seconds"] = round(time.perf_counter() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    def summarize_block(protocol: str) -> None:
        block = result["protocols"][protocol]
        block["folds"].sort(key=lambda record: record["fold"])
        block["summary"] = summarize(block["folds"], sorted(_row_names(block["folds"])))
        block["teacher_vs_embedding_accuracy"] = {  # every teacher row, this run's or kept
            name: teacher_vs_embedding(block["folds"], name)
            for name in block["summary"]
            if name not in BASELINES
        }

    with logging_redirect_tqdm():
        bar = tqdm(total=len(plans) * len(args.rows), desc="crowdflower", unit="run")
        for plan in plans:
            kept = earlier.get((plan.protocol, plan.fold), {})
            fold = {"fold": plan.fold, **plan.info, "models": kept}
            result["protocols"][plan.protocol]["folds"].append(fold)
            log.info("%s fold %d: %s", plan.protocol, plan.fold, plan.info)
            for model in args.rows:
                if model in kept:
                    bar.update(1)
                    continue
                bar.set_postfix_str(f"{plan.protocol} fold {plan.fold} {model}")
                res = runner.run(model, plan, fold["models"])
                fold["models"][model] = res
                log.info(
                    "%s fold %d %s: acc %.4f qwk %s (cutoffs %s) ndcg@20 %s (train %.1fs, %s/s)",
                    plan.protocol,
                    plan.fold,
                    model,
                    res["accuracy"],
                    _fmt(res["qwk"]),
                    _fmt(res["qwk_cutoffs"]),
                    _fmt(res["ndcg_at_20"]),
                    res["train_seconds"],
                    res["score_pairs_per_s"],
                )
                bar.update(1)
                write()  # after every row: a teacher row is tens of minutes
            summarize_block(plan.protocol)
            write()  # after every fold, so a long run that dies keeps what it measured
        bar.close()
    for protocol in result["protocols"]:
        if result["protocols"][protocol]["folds"]:
            summarize_block(protocol)
    write()
    print(args.out)
    return 0


def earlier_commands(old: dict[str, Any]) -> list[str]:
    """Every command whose rows an earlier result file keeps, oldest first."""
    return [*old.get("earlier_commands", []), old["command"]]


def keep_unplanned_folds(
    protocols: dict[str, Any], old: dict[str, Any], planned: set[tuple[str, int]]
) -> None:
    """Carry an earlier result's folds that this run does not plan into ``protocols``, so that a
    resumed run over fewer folds (one new row on fold 0) never drops the others."""
    for protocol, block in old.get("protocols", {}).items():
        for record in block.get("folds", []):
            if (protocol, record["fold"]) not in planned:
                protocols.setdefault(protocol, {"folds": []})["folds"].append(record)


def _rows_by_fold(old: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """The rows of an earlier run's result, by (protocol, fold)."""
    return {
        (protocol, fold["fold"]): fold["models"]
        for protocol, block in old.get("protocols", {}).items()
        for fold in block.get("folds", [])
    }


def _row_names(folds: list[dict[str, Any]]) -> set[str]:
    return {name for fold in folds for name in fold["models"]}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
