"""What both distillation protocols of bench/distillation_scaling.py share: CrowdFlower pairs
as student rows, one student arm fitted over several seeds and scored on the test pairs, the
item store, and the student-vs-teacher speed comparison."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from searchrel.config import FeatureConfig, StudentConfig
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer, assemble_inputs
from searchrel.features.store import ItemStore, build_item_store
from searchrel.metrics import evaluate
from searchrel.student.dataset import FeatureRows
from searchrel.student.train import fit_student
from searchrel.tables import ContractError

log = logging.getLogger("distillation")
KEEP = ("accuracy", "auroc_ge_2", "auroc_ge_3", "auroc_ge_4", "qwk", "ndcg_at_20")
PER_SEED = ("accuracy", "qwk", "val_loss")


def student_seeds(base: int, n: int) -> list[int]:
    """The student seeds of every arm: the same ``n`` for every arm of a run, so arms are
    compared seed by seed (the same initial weights and data order with and without the
    teacher's labels)."""
    if n < 1:
        raise ValueError(f"at least one student seed is needed, not {n}")
    return [base + k for k in range(n)]


def rows_of(
    x: np.ndarray, target: np.ndarray, source: str, dim: int, weight: np.ndarray | None = None
) -> FeatureRows:
    """Student rows of one source (weights 1 unless given)."""
    n = len(x)
    empty = np.array([""] * n, dtype=object)
    return FeatureRows(
        x,
        target.astype(np.float32),
        np.ones(n, np.float32) if weight is None else weight.astype(np.float32),
        np.array([source] * n, dtype=object),
        empty,
        empty,
        empty,
        empty,
        dim,
    )


def concat(parts: list[FeatureRows]) -> FeatureRows:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return FeatureRows(
        cat("x"),
        cat("target"),
        cat("weight"),
        cat("source"),
        cat("split"),
        cat("query"),
        cat("locale"),
        cat("item_id"),
        parts[0].embedding_dim,
    )


@dataclass
class HeldOutPairs:
    """The human labels of the test pairs: used only to score."""

    x: np.ndarray
    labels: np.ndarray
    queries: np.ndarray
    locales: np.ndarray
    levels: int

    def score(self, probs: np.ndarray) -> dict[str, Any]:
        m = evaluate(self.labels, probs, self.queries, self.locales, self.levels)
        return {k: m.get(k) for k in KEEP}

    def prior_accuracy(self) -> float:
        """Accuracy of always answering the test pairs' most common level."""
        return float(pd.Series(self.labels).value_counts(normalize=True).max())


def fit_arm(
    train: FeatureRows,
    val: FeatureRows,
    test: HeldOutPairs,
    seeds: Sequence[int],
    scfg: StudentConfig | None = None,
    x_test: np.ndarray | None = None,
) -> dict[str, Any]:
    """One student arm: one fit per seed (early stopping on ``val``), each scored on the test
    pairs; the means, the sd over seeds and the per-seed figures. ``x_test`` replaces the
    test inputs (a feature ablation drops columns from both)."""
    import torch

    scfg = scfg or StudentConfig()
    xt = torch.from_numpy(test.x if x_test is None else x_test)
    started = time.perf_counter()
    runs, epochs = [], []
    for seed in seeds:
        net, history, best = fit_student(
            train, val, scfg.model_copy(update={"seed": seed}), test.levels
        )
        with torch.inference_mode():
            runs.append({**test.score(net(xt).numpy()), "val_loss": best})
        epochs.append(len(history))
    keys = (*KEEP, "val_loss")

    def mean(k: str) -> float | None:
        values = [r[k] for r in runs if r[k] is not None]
        return float(np.mean(values)) if values else None

    def sd(k: str) -> float | None:
        values = [r[k] for r in runs if r[k] is not None]
        return float(np.std(values)) if values else None

    return {
        **{k: mean(k) for k in keys},
        "sd": {k: sd(k) for k in keys},
        "per_seed": {k: [r[k] for r in runs] for k in PER_SEED},
        "seeds": list(seeds),
        "train_rows": len(train),
        "rows_by_source": {s: int((train.source == s).sum()) for s in ("human", "teacher")},
        "epochs_run": epochs,
        "seconds": round(time.perf_counter() - started, 1),
    }


def load_item_store(
    items: pa.Table, work: Path, features: FeatureConfig, name: str = "item_store"
) -> tuple[ItemStore, PairFeaturizer]:
    """The catalogue's item store (built once per work dir and ``name``: the catalogue does
    not change; one name per embedder), without an impression log: CrowdFlower has no
    engagement, so none is derived."""
    store_dir = work / name
    embedder = Embedder.from_config(features)
    try:
        store = ItemStore(store_dir)
    except (OSError, ContractError) as exc:  # absent, or written by an older schema
        log.info("building the item store (%s)", exc)
        shutil.rmtree(store_dir, ignore_errors=True)
        build_item_store(items, None, embedder, features, store_dir)
        store = ItemStore(store_dir)
    return store, PairFeaturizer(store, embedder, features)


TeacherScore = Callable[[list[str], list[str]], np.ndarray]  # (queries, item ids) -> probs


def teacher_scorer(
    teacher_dir: Path,
    items_by_id: dict[str, dict[str, Any]],
    batch_size: int = 64,
    max_batch_tokens: int | None = None,
) -> TeacherScore:
    """The saved teacher scoring (query, item id) pairs in this process: K probabilities per
    pair, its item texts built per call (as a real-time teacher would have to)."""
    from searchrel.teacher.ensemble import load_scorer

    scorer = load_scorer(teacher_dir)

    def score(queries: list[str], item_ids: list[str]) -> np.ndarray:
        texts = scorer.item_texts([items_by_id[i] for i in item_ids])
        probs = scorer.predict_proba(queries, texts, batch_size, max_batch_tokens=max_batch_tokens)
        return probs / probs.sum(axis=1, keepdims=True)

    return score


def measure_speed(
    net: Any,
    store: ItemStore,
    featurizer: PairFeaturizer,
    queries: np.ndarray,
    item_ids: np.ndarray,
    teacher_score: TeacherScore,
    features: FeatureConfig,
    other_encoder: Embedder | None = None,
) -> dict[str, Any]:
    """Student vs teacher pairs/s on the same test pairs, at two granularities.

    "per query": one call per query with its candidates, as the server runs the student (the
    query's embedding computed, not cached) and as a real-time teacher would run. "offline":
    every pair in one call, as daily labeling runs the teacher (length-sorted batches) and as
    the student would score a logged day (query embeddings batched). Baseline in the same
    run: per query with the query encoder in eager PyTorch instead of ONNX Runtime. The goal
    is judged on the lower of the two ratios. ``other_encoder`` (a student on another
    embedder): that encoder's ms per query too, timed the same way in the same run."""
    import torch

    rows = np.array([store.index[i] for i in item_ids])
    frame = pd.DataFrame({"query": queries, "row": rows, "item_id": item_ids})
    by_query = frame.groupby("query", sort=False)

    def student_per_query() -> None:
        for query, group in by_query:
            f = featurizer.featurize(str(query), group["row"].to_numpy())
            with torch.inference_mode():
                net(
                    torch.from_numpy(
                        assemble_inputs(f.query_embedding, f.item_embeddings, f.scalars)
                    )
                )

    def student_offline() -> None:
        qv, iv, sv = featurizer.featurize_many(list(queries), rows)
        with torch.inference_mode():
            net(torch.from_numpy(assemble_inputs(qv, iv, sv)))

    def teacher_per_query() -> None:
        for query, group in by_query:
            teacher_score([str(query)] * len(group), list(group["item_id"]))

    def teacher_offline() -> None:
        teacher_score(list(queries), list(item_ids))

    def timed(fn: Callable[[], None]) -> float:
        featurizer.embedder.clear_cache()  # every query's embedding is computed, not recalled
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def encoder_ms_per_query(embedder: Embedder) -> float:
        """One test query at a time through the encoder alone (cache cleared)."""
        embedder.clear_cache()
        t = time.perf_counter()
        for query, _ in by_query:
            embedder.encode_query(str(query))
        return round((time.perf_counter() - t) / by_query.ngroups * 1000, 2)

    served_embedder = featurizer.embedder
    pytorch_embedder = Embedder.from_config(features.model_copy(update={"embed_runtime": "torch"}))
    featurizer.embedder = pytorch_embedder
    student_per_query()  # warm-up: first calls pay one-off allocation costs
    pytorch_per_query_s = timed(student_per_query)
    featurizer.embedder = served_embedder
    student_per_query()
    teacher_score([str(queries[0])], [str(item_ids[0])])  # warm-up
    encoder = {
        "source": served_embedder.source,
        "runtime": served_embedder.runtime,
        "ms_per_query": encoder_ms_per_query(served_embedder),
        "pytorch_ms_per_query": encoder_ms_per_query(pytorch_embedder),
        "max_abs_diff_vs_pytorch_on_probes": served_embedder.onnx_max_abs_diff,
    }
    if other_encoder is not None:
        encoder["other"] = {
            "source": other_encoder.source,
            "runtime": other_encoder.runtime,
            "ms_per_query": encoder_ms_per_query(other_encoder),
        }
    per_query_teacher_s = timed(teacher_per_query)
    n_pairs = len(queries)
    speed: dict[str, Any] = {
        "pairs": n_pairs,
        "queries": int(by_query.ngroups),
        "threads": torch.get_num_threads(),
        "query_encoder": encoder,
        "per_query": {
            "student_seconds": round(timed(student_per_query), 3),
            "teacher_seconds": round(per_query_teacher_s, 3),
        },
        "per_query_pytorch_encoder": {
            "student_seconds": round(pytorch_per_query_s, 3),
            "teacher_seconds": round(per_query_teacher_s, 3),
        },
        "offline": {
            "student_seconds": round(timed(student_offline), 3),
            "teacher_seconds": round(timed(teacher_offline), 3),
        },
    }
    for mode in ("per_query", "per_query_pytorch_encoder", "offline"):
        m = speed[mode]
        m["student_pairs_per_s"] = round(n_pairs / m["student_seconds"], 1)
        m["teacher_pairs_per_s"] = round(n_pairs / m["teacher_seconds"], 1)
        m["student_over_teacher"] = round(m["student_pairs_per_s"] / m["teacher_pairs_per_s"], 1)
    speed["student_over_teacher"] = min(
        speed[m]["student_over_teacher"] for m in ("per_query", "offline")
    )
    return speed
