"""Drift of what the student served against what it was trained on, with Evidently.

The reference is the student's training table (``schema.STUDENT_FEATURES``); the current window
is the request log (``schema.REQUEST_LOG``). Compared with Evidently 0.7:

* every scalar feature of ``schema.SCALAR_FEATURES``, one ``ValueDrift`` each, and the share of
  drifted ones (``DataDriftPreset`` -> ``DriftedColumnsCount``): this share gives the verdict;
* the predicted score: ``sum_k k * target_k`` of the reference rows against the served
  ``expected_score`` (``ValueDrift``), reported beside the verdict;
* the query embeddings, expanded into columns ``qemb_0..qemb_{d-1}`` and declared as one
  embedding in the ``DataDefinition`` (``EmbeddingsDrift``: a classifier that tries to tell the
  two sides apart; ``DataDriftPreset`` ignores its own embeddings arguments). One row per
  distinct query on each side: the rows of a query share its embedding, and with copies of a
  point on both sides of Evidently's train/test split the classifier scores well on identical
  windows (AUC about 0.6 on synthetic data with no drift at all). Reported beside the verdict;
* per locale, the drifted-columns share, where both sides have ``min_window`` rows.

Which test a column gets is Evidently's choice (K-S, or a Z/chi-square test for few distinct
values, up to 1,000 reference rows; normed Wasserstein or Jensen-Shannon distance above). The
config's ``stattest_threshold`` is the threshold of the p-value tests; a distance test keeps its
own default (0.1) unless ``distance_threshold`` is given, as a p-value of 0.05 is no distance
threshold (two samples of one distribution often lie 0.05 apart). Each side is subsampled,
deterministically, to ``max_rows``. Most of the cost is the t-SNE Evidently's
``EmbeddingsDrift`` runs for its plot (on up to 2,500 points a side, on one OpenMP thread here).
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from searchrel.atomic_files import write_text_atomic
from searchrel.config import DriftConfig
from searchrel.drift.verdict import Signal, Verdict
from searchrel.schema import SCALAR_FEATURES
from searchrel.scores import expected_score

log = logging.getLogger(__name__)

REPORT_HTML = "drift_report.html"
EMBEDDINGS_HTML = "drift_embeddings.html"  # only if the two reports cannot share one page
SCORE_COLUMN = "expected_score"
EMBEDDING_NAME = "query_embedding"
EMBEDDING_PREFIX = "qemb_"
DEFAULT_MAX_ROWS = 5_000
DEFAULT_EMBEDDING_THRESHOLD = 0.55  # ROC AUC of the reference-vs-current classifier
MIN_DISTINCT_QUERIES = 20  # per side, for the embedding classifier (and Evidently's t-SNE)
# Evidently's tests whose score is a p-value (drift when it is small); the rest are distances.
P_VALUE_TESTS = frozenset(
    {"ks", "z", "chisquare", "anderson", "cramer_von_mises", "es", "fisher_exact", "g_test"}
    | {"mannw", "t_test", "empirical_mmd"}
)
REFERENCE_COLUMNS = ("query", "locale", "target", "query_embedding", *SCALAR_FEATURES)
CURRENT_COLUMNS = ("query", "locale", SCORE_COLUMN, "query_embedding", *SCALAR_FEATURES)
FEATURES = list(SCALAR_FEATURES)


@dataclass(frozen=True)
class _Test:
    """The test Evidently picks for a column, and the threshold we give it."""

    stattest: Any  # evidently's StatTest
    threshold: float
    p_value: bool

    @property
    def method(self) -> str:
        return str(self.stattest.name)

    def drifted(self, score: float) -> bool:
        """Evidently's rule: a p-value below the threshold, or a distance at least it."""
        if math.isnan(score):
            return False
        return score < self.threshold if self.p_value else score >= self.threshold

    def run(self, ref: pd.Series, cur: pd.Series) -> tuple[float, bool]:
        """Evidently's own test on two samples: (score, drifted)."""
        from evidently.legacy.core import ColumnType

        result = self.stattest(ref.dropna(), cur.dropna(), ColumnType.Numerical, self.threshold)
        return float(result.drift_score), bool(result.drifted)


def _check_columns(table: pa.Table, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValueError(f"drift: the {what} table lacks column(s) {', '.join(missing)}")


def _sample(indices: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` of ``indices``, the same ones for the same input and seed, in order."""
    if len(indices) <= max_rows:
        return indices
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=max_rows, replace=False))


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    return table.take(pa.array(rows, type=pa.int64()))


def _expected_score(targets: pa.ChunkedArray) -> np.ndarray:
    """The expected score of each row's target distribution (NaN for a row without one)."""
    rows = targets.to_pylist()
    out = np.full(len(rows), math.nan, dtype=np.float64)
    given = [i for i, t in enumerate(rows) if t]
    if given:
        out[given] = expected_score(np.asarray([rows[i] for i in given], dtype=np.float64))
    return out


def _frame(table: pa.Table, rows: np.ndarray, reference: bool) -> pd.DataFrame:
    """Scalar features and the expected score of the rows, as float64 columns."""
    part = _take(table, rows)
    data = {name: part.column(name).to_numpy().astype(np.float64) for name in FEATURES}
    if reference:
        data[SCORE_COLUMN] = _expected_score(part.column("target"))
    else:
        data[SCORE_COLUMN] = part.column(SCORE_COLUMN).to_numpy().astype(np.float64)
    return pd.DataFrame(data)


def _distinct_query_rows(table: pa.Table) -> np.ndarray:
    """The first row with an embedding of each distinct query text (its embedding depends on
    nothing else; the request log carries it on the first row of each request only)."""
    keys = table.select(["query"]).append_column(
        "_row", pa.array(np.arange(table.num_rows), type=pa.int64())
    )
    if "query_embedding" in table.column_names and table.column("query_embedding").null_count:
        keys = keys.filter(pc.is_valid(table.column("query_embedding")))
    first = keys.group_by(["query"], use_threads=False).aggregate([("_row", "min")])
    return np.sort(first.column("_row_min").to_numpy())


def _embeddings(table: pa.Table, rows: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The query embeddings of the rows as a matrix, or None and why not."""
    column = _take(table, rows).column("query_embedding")
    if column.null_count:
        return None, f"{column.null_count} row(s) without a query embedding"
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    dims = sorted({int(n) for n in lengths})
    if len(dims) != 1 or dims[0] == 0:
        return None, f"query embeddings of different or zero lengths {dims[:5]}"
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
    matrix = flat.reshape(len(lengths), dims[0])
    if not np.isfinite(matrix).all():
        return None, "query embeddings with NaN or infinite values"
    return matrix, ""


def _plan(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    columns: list[str],
    p_threshold: float,
    distance_threshold: float | None,
) -> dict[str, _Test]:
    """The test Evidently picks for each column on these samples, with the threshold we apply."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    plan = {}
    for column in columns:
        test = get_stattest(ref[column].dropna(), cur[column].dropna(), ColumnType.Numerical, None)
        p_value = test.name in P_VALUE_TESTS
        if p_value:
            threshold = p_threshold
        elif distance_threshold is not None:
            threshold = distance_threshold
        else:
            threshold = float(test.default_threshold)
        plan[column] = _Test(stattest=test, threshold=float(threshold), p_value=p_value)
    return plan


def _one_openmp_thread() -> contextlib.AbstractContextManager[Any]:
    """Evidently's t-SNE (scikit-learn, OpenMP) on one thread: on a busy machine its threads
    spin against each other, and its time on a few shared cores varies by orders of
    magnitude by chance."""
    try:
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


def _run_report(metrics: list[Any], ref: pd.DataFrame, cur: pd.DataFrame, definition: Any) -> Any:
    from evidently import Dataset, Report

    with np.errstate(invalid="ignore", divide="ignore"):  # constant columns in correlations
        return Report(metrics).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )


def _metric_values(snapshot: Any, field: str | None = None) -> dict[tuple[str, str], Any]:
    """The values of a snapshot's metrics (or a field of their config, e.g. the resolved
    ``method``) by (metric type, column or embedding name), from ``snapshot.dict()``."""
    out: dict[tuple[str, str], Any] = {}
    for metric in snapshot.dict().get("metrics", []):
        config = metric.get("config") or {}
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        key = config.get("column") or config.get("embeddings_name") or ""
        out[(kind, str(key))] = config.get(field) if field else metric.get("value")
    return out


def _number(value: Any) -> float:
    if isinstance(value, dict):  # a single value wrapped in a mapping
        value = value.get("value", math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _share(values: dict[tuple[str, str], Any], drifted: list[str]) -> float:
    """Evidently's drifted-columns share; the per-column count if it is missing."""
    count = values.get(("DriftedColumnsCount", ""))
    share = _number(count.get("share")) if isinstance(count, dict) else math.nan
    if math.isnan(share):
        return len(drifted) / len(FEATURES)
    if round(share * len(FEATURES)) != len(drifted):
        log.warning("drift: Evidently counts %s drifted columns, the tests %d", count, len(drifted))
    return share


def _chance_auc(n_reference: int, n_current: int) -> float:
    """The 95th percentile of the ROC AUC a classifier gets by chance on Evidently's test half.

    Evidently's model method scores half the rows; with no drift the AUC is about normal with
    mean 0.5 and variance (n1 + n2 + 1) / (12 n1 n2) (Mann-Whitney). On a small window a fixed
    threshold of 0.55 is within the noise, so the threshold is never below this.
    """
    n1, n2 = max(n_reference / 2, 1.0), max(n_current / 2, 1.0)
    return 0.5 + 1.645 * math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.6g}")


def _feature_report(
    ref: pd.DataFrame, cur: pd.DataFrame, cfg: DriftConfig, distance_threshold: float | None
) -> tuple[Any, dict[str, Any]]:
    """Features and score: the snapshot and the figures taken from it."""
    from evidently import DataDefinition
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    plan = _plan(ref, cur, [*FEATURES, SCORE_COLUMN], cfg.stattest_threshold, distance_threshold)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=FEATURES,
            drift_share=cfg.drift_share,
            # No per-column method: Evidently picks the same test as _plan on the same data (and
            # rejects some of its own picks by name, e.g. "z" for a numerical 0/1 column).
            per_column_threshold={c: plan[c].threshold for c in FEATURES},
        ),
        ValueDrift(column=SCORE_COLUMN, threshold=plan[SCORE_COLUMN].threshold),
    ]
    definition = DataDefinition(numerical_columns=[*FEATURES, SCORE_COLUMN])
    snapshot = _run_report(metrics, ref, cur, definition)
    values = _metric_values(snapshot)
    ran = _metric_values(snapshot, field="method")  # the test each ValueDrift resolved to

    def figures(column: str) -> dict[str, Any]:
        score = _number(values.get(("ValueDrift", column)))
        test = plan[column]
        if ran.get(("ValueDrift", column)) not in (None, test.stattest.display_name):
            log.warning(
                "drift: %s: Evidently ran %s, not %s; the verdict may read its score wrongly",
                column,
                ran.get(("ValueDrift", column)),
                test.stattest.display_name,
            )
        return {
            "method": test.method,
            "score": _json_float(score),
            "threshold": test.threshold,
            "drifted": test.drifted(score),
            "reference_mean": _json_float(float(ref[column].mean())),
            "current_mean": _json_float(float(cur[column].mean())),
        }

    columns = {column: figures(column) for column in FEATURES}
    drifted = [c for c in FEATURES if columns[c]["drifted"]]
    score = figures(SCORE_COLUMN)
    score["drift_detected"] = score.pop("drifted")
    return snapshot, {
        "drifted_columns": drifted,
        "drift_share": float(_share(values, drifted)),
        "columns": columns,
        "score_drift": {
            "column": SCORE_COLUMN,
            "reference": "sum_k k * target_k of the training rows",
            "current": "served expected_score",
            **score,
        },
    }


def _embedding_report(
    reference: pa.Table, current: pa.Table, max_rows: int, seed: int, threshold: float
) -> tuple[Any, dict[str, Any]]:
    """Query embeddings, one row per distinct query a side: the snapshot (or None) and figures."""
    from evidently import DataDefinition
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import ModelDriftMethod

    ref_rows = _sample(_distinct_query_rows(reference), max_rows, seed)
    cur_rows = _sample(_distinct_query_rows(current), max_rows, seed + 1)
    fewest = min(len(ref_rows), len(cur_rows))
    if fewest < MIN_DISTINCT_QUERIES:
        why = f"{fewest} distinct queries on a side, fewer than {MIN_DISTINCT_QUERIES}"
        return None, {"drift_detected": False, "skipped": why}
    ref_emb, ref_why = _embeddings(reference, ref_rows)
    cur_emb, cur_why = _embeddings(current, cur_rows)
    if ref_emb is None or cur_emb is None:
        why = f"reference: {ref_why}" if ref_emb is None else f"current: {cur_why}"
        return None, {"drift_detected": False, "skipped": why}
    if ref_emb.shape[1] != cur_emb.shape[1]:
        why = f"dimensions differ: reference {ref_emb.shape[1]}, current {cur_emb.shape[1]}"
        return None, {"drift_detected": False, "skipped": why}

    names = [f"{EMBEDDING_PREFIX}{i}" for i in range(ref_emb.shape[1])]
    definition = DataDefinition(numerical_columns=names, embeddings={EMBEDDING_NAME: names})
    metric = EmbeddingsDrift(
        embeddings_name=EMBEDDING_NAME,
        drift_method=ModelDriftMethod(threshold=threshold, bootstrap=False),
    )
    with _one_openmp_thread():
        snapshot = _run_report(
            [metric],
            pd.DataFrame(ref_emb, columns=names),
            pd.DataFrame(cur_emb, columns=names),
            definition,
        )
    auc = _number(_metric_values(snapshot).get(("EmbeddingsDrift", EMBEDDING_NAME)))
    chance = _chance_auc(len(ref_emb), len(cur_emb))
    applied = max(threshold, chance)
    return snapshot, {
        "embedding": EMBEDDING_NAME,
        "dim": ref_emb.shape[1],
        "reference_queries": len(ref_emb),
        "current_queries": len(cur_emb),
        "method": "model: ROC AUC of a classifier telling reference from current queries",
        "score": _json_float(auc),
        "threshold": round(applied, 6),
        "chance_auc_95": round(chance, 6),
        "drift_detected": bool(not math.isnan(auc) and auc > applied),
    }


def _per_locale(
    reference: pa.Table,
    current: pa.Table,
    cfg: DriftConfig,
    max_rows: int,
    seed: int,
    distance_threshold: float | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per locale with ``min_window`` rows a side: Evidently's drifted-columns share (no HTML),
    and the drifted columns by Evidently's own per-column tests (the ones the count is made of).
    """
    from evidently import DataDefinition
    from evidently.metrics import DriftedColumnsCount

    ref_locales = np.asarray(reference.column("locale").to_pylist(), dtype=object)
    cur_locales = np.asarray(current.column("locale").to_pylist(), dtype=object)
    done: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for locale in sorted(set(ref_locales.tolist()) | set(cur_locales.tolist()), key=str):
        ref_all = np.flatnonzero(ref_locales == locale)
        cur_all = np.flatnonzero(cur_locales == locale)
        counts = {"reference_rows": len(ref_all), "current_rows": len(cur_all)}
        if min(len(ref_all), len(cur_all)) < cfg.min_window:
            skipped[str(locale)] = {**counts, "reason": f"fewer than {cfg.min_window} rows"}
            continue
        ref = _frame(reference, _sample(ref_all, max_rows, seed), reference=True)[FEATURES]
        cur = _frame(current, _sample(cur_all, max_rows, seed + 1), reference=False)[FEATURES]
        plan = _plan(ref, cur, FEATURES, cfg.stattest_threshold, distance_threshold)
        drifted = [c for c in FEATURES if plan[c].run(ref[c], cur[c])[1]]
        metric = DriftedColumnsCount(
            columns=FEATURES,
            drift_share=cfg.drift_share,
            per_column_threshold={c: plan[c].threshold for c in FEATURES},
        )
        snapshot = _run_report([metric], ref, cur, DataDefinition(numerical_columns=FEATURES))
        share = _share(_metric_values(snapshot), drifted)
        done[str(locale)] = {
            **counts,
            "drifted_columns": drifted,
            "drift_share": float(share),
            "drift_detected": bool(share >= cfg.drift_share),
        }
    return done, skipped


def _placeholder_html(reason: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>searchrel drift</title></head>"
        f"<body><h1>searchrel drift report</h1><p>No Evidently report: {html.escape(reason)}</p>"
        "</body></html>\n"
    )


def _write_html(out_dir: Path, parts: list[tuple[str, Any]]) -> dict[str, str]:
    """One page with the widgets of every snapshot, each under its title.

    Evidently 0.7 has no public call for that, so this uses the snapshot's widgets and its
    renderer; if they move, each snapshot gets a page of its own (the first in REPORT_HTML).
    """
    paths = {"report_html": str(out_dir / REPORT_HTML)}
    if len(parts) > 1:
        try:
            from evidently.core.metric_types import render_widgets
            from evidently.legacy.renderers.html_widgets import group_widget

            widgets = []
            for title, snapshot in parts:
                widgets.append(group_widget(title=title, widgets=list(snapshot._widgets)))
                widgets.extend(snapshot._tests_widgets)
            write_text_atomic(out_dir / REPORT_HTML, render_widgets(widgets, as_iframe=False))
            return paths
        except (ImportError, AttributeError, TypeError) as exc:
            log.warning("drift: writing the embeddings report on a page of its own (%s)", exc)
    write_text_atomic(out_dir / REPORT_HTML, parts[0][1].get_html_str(as_iframe=False))
    for _, snapshot in parts[1:]:
        write_text_atomic(out_dir / EMBEDDINGS_HTML, snapshot.get_html_str(as_iframe=False))
        paths["embeddings_html"] = str(out_dir / EMBEDDINGS_HTML)
    return paths


def run_drift(
    reference: pa.Table,
    current: pa.Table,
    cfg: DriftConfig,
    out_dir: Path,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    distance_threshold: float | None = None,
    embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
) -> Verdict:
    """Compare served rows with training rows; write the HTML report, return the verdict.

    ``reference`` has ``STUDENT_FEATURES`` rows and ``current`` ``REQUEST_LOG`` rows (both
    validated by the caller; the columns used are checked here). Writes
    ``out_dir/drift_report.html`` (Evidently) and returns the verdict and its signals: the
    ``features`` signal (the headline) fires when both sides have at least ``cfg.min_window``
    rows and the share of drifted scalar features is at least ``cfg.drift_share``; the
    ``score`` and ``embeddings`` signals and the locales are reported beside it. Each side is
    subsampled to ``max_rows`` rows (seeded) and the embeddings to ``max_rows`` distinct
    queries.
    """
    if max_rows < 2:
        raise ValueError(f"max_rows must be at least 2, got {max_rows}")
    _check_columns(reference, REFERENCE_COLUMNS, "reference (student features)")
    _check_columns(current, CURRENT_COLUMNS, "current (request log)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_rows, cur_rows = reference.num_rows, current.num_rows

    reasons = []
    if cur_rows < cfg.min_window:
        reasons.append(f"current window has {cur_rows} row(s), fewer than {cfg.min_window}")
    if ref_rows < cfg.min_window:
        reasons.append(f"reference has {ref_rows} row(s), fewer than {cfg.min_window}")
    enough = not reasons
    ref_idx = _sample(np.arange(ref_rows), max_rows, seed)
    cur_idx = _sample(np.arange(cur_rows), max_rows, seed + 1)

    details: dict[str, Any] = {
        "drifted_columns": [],
        "drift_share": None,
        "score_drift": None,
        "embedding_drift": None,
        "per_locale": {},
        "locales_skipped": {},
        "columns": {},
        "thresholds": {
            "min_window": cfg.min_window,
            "drift_share": cfg.drift_share,
            "stattest_threshold": cfg.stattest_threshold,
            "stattest_threshold_applies_to": "p-value tests: drift when p < threshold",
            "distance_threshold": distance_threshold,
            "distance_threshold_applies_to": (
                "distance tests: drift when distance >= threshold (null: the test's default)"
            ),
            "embedding_auc": embedding_threshold if cfg.embedding_drift else None,
        },
        "sampling": {
            "max_rows": max_rows,
            "seed": seed,
            "reference_rows_used": len(ref_idx),
            "current_rows_used": len(cur_idx),
            "subsampled": len(ref_idx) < ref_rows or len(cur_idx) < cur_rows,
        },
        "report_html": str(out_dir / REPORT_HTML),
    }
    reason = "; ".join(reasons)

    if ref_rows == 0 or cur_rows == 0:
        write_text_atomic(out_dir / REPORT_HTML, _placeholder_html(reason))
    else:
        ref = _frame(reference, ref_idx, reference=True)
        cur = _frame(current, cur_idx, reference=False)
        snapshot, figures = _feature_report(ref, cur, cfg, distance_threshold)
        details.update(figures)
        parts = [("Scalar features and predicted score", snapshot)]
        if cfg.embedding_drift and not enough:
            details["embedding_drift"] = {"drift_detected": False, "skipped": "not enough data"}
        elif cfg.embedding_drift:
            emb_snapshot, details["embedding_drift"] = _embedding_report(
                reference, current, max_rows, seed, embedding_threshold
            )
            if emb_snapshot is not None:
                parts.append(("Query embeddings (one row per distinct query)", emb_snapshot))
        if enough:
            details["per_locale"], details["locales_skipped"] = _per_locale(
                reference, current, cfg, max_rows, seed, distance_threshold
            )
        details.update(_write_html(out_dir, parts))

    return Verdict(
        reference_rows=ref_rows,
        current_rows=cur_rows,
        enough_data=enough,
        signals=_signals(details, cfg, enough),
        locale_shares={k: v["drift_share"] for k, v in details["per_locale"].items()},
        reason=reason,
        details=details,
    )


def _signals(details: dict[str, Any], cfg: DriftConfig, enough: bool) -> list[Signal]:
    """The verdict's signals from the report's figures: the features always; the score and
    the embeddings where they were tested."""
    share = details["drift_share"]
    signals = [
        Signal(
            "features",
            statistic=share,
            threshold=cfg.drift_share,
            drifted=bool(enough and share is not None and share >= cfg.drift_share),
        )
    ]
    score, emb = details["score_drift"], details["embedding_drift"]
    if score is not None:
        signals.append(
            Signal("score", score["score"], score["threshold"], bool(score["drift_detected"]))
        )
    if emb is not None:
        signals.append(
            Signal("embeddings", emb.get("score"), emb.get("threshold"), emb["drift_detected"])
        )
    return signals
