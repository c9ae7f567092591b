"""Two models on the same held-out queries: the metric's difference and how sure we are of it.

A paired bootstrap over queries (Efron & Tibshirani; the usual significance test of IR
evaluation): queries are drawn with replacement, both models are scored on the same draw, and
the spread of the difference over many draws says how much of the observed difference is the
luck of which queries were held out. Queries, not pairs, are resampled because a query's items
are judged and ranked together: their errors are not independent.

Ranking metrics averaged per query (``ndcg_at_k``) are computed once per query and resampled
as means; pair metrics (``accuracy``, ``qwk``, ``auroc_ge_t``) are recomputed on each draw's
rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from searchrel import metrics
from searchrel.scores import expected_score

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RowMetric = Callable[[IntArray, FloatArray], float | None]  # labels, probs -> value (or None)

_NDCG = re.compile(r"ndcg_at_(\d+)$")
_AUROC = re.compile(r"auroc_ge_(\d+)$")
MIN_DEFINED_SHARE = 0.5  # fewer draws with the metric defined than this: no verdict


class UnknownMetricError(ValueError):
    """A metric name the comparison cannot resample; one line for the user."""


@dataclass(frozen=True)
class Comparison:
    """Candidate minus reference on one metric, with its bootstrap distribution summarised."""

    metric: str
    candidate: float
    reference: float
    delta: float  # candidate - reference on all held-out queries
    lower: float  # one-sided lower bound of the delta at ``confidence``
    upper: float  # one-sided upper bound of the delta at ``confidence``
    p_worse: float  # share of draws in which the candidate scored below the reference
    confidence: float
    resamples: int  # draws in which the metric was defined for both models
    queries: int  # queries resampled

    def worse_beyond(self, max_regression: float) -> bool:
        """Whether the candidate trails by more than ``max_regression`` with ``confidence``:
        even the delta's upper bound lies below ``-max_regression``."""
        return self.upper < -max_regression


def _per_query_ndcg(k: int) -> Callable[[IntArray, FloatArray, list[IntArray]], FloatArray]:
    def values(labels: IntArray, probs: FloatArray, groups: list[IntArray]) -> FloatArray:
        score = expected_score(probs)
        out = [metrics.ndcg_at_k(labels[idx], score[idx], k) for idx in groups]
        return np.array([np.nan if v is None else v for v in out], dtype=np.float64)

    return values


def _row_metric(name: str, levels: int) -> RowMetric:
    if name == "accuracy":
        return lambda y, p: metrics.accuracy(y, metrics.predicted_labels(p))
    if name == "qwk":
        return lambda y, p: metrics.quadratic_weighted_kappa(y, metrics.predicted_labels(p), levels)
    match = _AUROC.match(name)
    if match and 2 <= int(match.group(1)) <= levels:
        t = int(match.group(1))
        return lambda y, p: metrics.auroc(y >= t, metrics.prob_at_least(p, t))
    raise UnknownMetricError(
        f"gate.metric {name!r} cannot be compared (use ndcg_at_<k>, accuracy, qwk or "
        f"auroc_ge_<2..{levels}>)"
    )


def check_metric(name: str, levels: int) -> None:
    """Raise UnknownMetricError unless ``name`` is a metric ``paired_bootstrap`` resamples."""
    if not _NDCG.match(name):
        _row_metric(name, levels)


def metric_value(
    labels: npt.ArrayLike,
    probs: npt.ArrayLike,
    queries: npt.ArrayLike,
    locales: npt.ArrayLike,
    levels: int,
    metric: str,
) -> float | None:
    """One model's ``metric`` on all rows, computed as ``paired_bootstrap`` computes it."""
    check_metric(metric, levels)
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    ndcg = _NDCG.match(metric)
    if ndcg:
        groups = [idx for _, _, idx in metrics.query_groups(queries, locales)]
        value = _nanmean(_per_query_ndcg(int(ndcg.group(1)))(y, p, groups))
    else:
        value = _value(_row_metric(metric, levels)(y, p))
    return None if np.isnan(value) else value


def paired_bootstrap(
    labels: npt.ArrayLike,
    candidate_probs: npt.ArrayLike,
    reference_probs: npt.ArrayLike,
    queries: npt.ArrayLike,
    locales: npt.ArrayLike,
    levels: int,
    metric: str,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare the two models' ``metric`` on the same rows, resampling (query, locale) groups."""
    check_metric(metric, levels)
    y = np.asarray(labels, dtype=np.int64)
    new = np.asarray(candidate_probs, dtype=np.float64)
    old = np.asarray(reference_probs, dtype=np.float64)
    groups = [idx for _, _, idx in metrics.query_groups(queries, locales)]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(resamples, len(groups)))
    ndcg = _NDCG.match(metric)
    if ndcg:
        per_query = _per_query_ndcg(int(ndcg.group(1)))
        new_q, old_q = per_query(y, new, groups), per_query(y, old, groups)
        observed = (_nanmean(new_q), _nanmean(old_q))
        # A query whose items share one label has no nDCG: it drops out of that draw's mean.
        new_b, old_b = _nanmean_rows(new_q[draws]), _nanmean_rows(old_q[draws])
    else:
        row_metric = _row_metric(metric, levels)
        observed = (_value(row_metric(y, new)), _value(row_metric(y, old)))
        new_b, old_b = np.empty(resamples), np.empty(resamples)
        for b, draw in enumerate(draws):
            rows = np.concatenate([groups[g] for g in draw])
            new_b[b], old_b[b] = (
                _value(row_metric(y[rows], new[rows])),
                _value(row_metric(y[rows], old[rows])),
            )
    deltas = new_b - old_b
    deltas = deltas[np.isfinite(deltas)]
    if np.isnan(observed[0]) or np.isnan(observed[1]):
        raise ValueError(f"{metric} is undefined on the held-out set")
    if deltas.size < MIN_DEFINED_SHARE * resamples:
        raise ValueError(f"{metric} is undefined on most bootstrap draws of the held-out set")
    lower, upper = np.quantile(deltas, [1.0 - confidence, confidence])
    return Comparison(
        metric=metric,
        candidate=observed[0],
        reference=observed[1],
        delta=observed[0] - observed[1],
        lower=float(lower),
        upper=float(upper),
        p_worse=float(np.mean(deltas < 0)),
        confidence=confidence,
        resamples=int(deltas.size),
        queries=len(groups),
    )


def _value(v: float | None) -> float:
    return np.nan if v is None else float(v)


def _nanmean(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else np.nan


def _nanmean_rows(values: FloatArray) -> FloatArray:
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
