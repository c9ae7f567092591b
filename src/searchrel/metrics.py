"""Evaluation metrics shared by the teacher and the student: one module, one set of definitions.

scikit-learn computes what it has (AUROC, ROC curves, the confusion matrix, quadratic weighted
kappa, nDCG with tie-averaged gains); this module fixes the conventions around it and adds what
no library has: grouping rows into queries, precision@k per locale with ties counted by
expectation, and QWK-fitted cutoffs on the expected score.

Both models emit a probability distribution over the graded relevance levels ``1..K`` (level 1
first). Every metric here is computed from those probabilities, the true labels and the
``(query, locale)`` group of each row, so that a teacher-vs-student comparison can never differ
merely because two code paths defined a metric differently.

Conventions (each function's docstring says why):

* Predicted label = ``argmax(probs) + 1`` (first level wins an exact tie, as ``np.argmax`` does).
* Ranking score = expected level ``sum_k k * p_k`` (``searchrel.scores``): it uses the whole
  distribution, so two items with the same argmax are still ordered by how confident the model is.
* A query is the pair ``(query, locale)``: the same query text in two locales is two queries.
* Ties in a ranking score are scored by their *expectation under random tie-breaking*, never by
  input order, so a metric cannot be gamed (or hurt) by how rows happen to be sorted. Scores are
  compared after rounding to ``SCORE_DECIMALS`` decimals so that floating-point noise from
  summing probabilities (``0.1 + 0.2`` vs ``0.3``) does not break a real tie.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as sk

from searchrel.scores import expected_score

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Scores equal to this many decimals are a tie (absorbs float noise of summed probabilities).
SCORE_DECIMALS = 9
# Probability rows must sum to 1 within this (same tolerance as the Parquet contract's probs).
PROBS_TOLERANCE = 1e-3
NDCG_K = 20
PRECISION_K = 8


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _labels(y: ArrayLike, levels: int | None = None, name: str = "y_true") -> IntArray:
    """Labels as a 1-D int64 array, checked to be whole numbers (and within 1..levels if given)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        as_float = arr.astype(np.float64)
        if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise ValueError(f"{name} must hold whole-number labels")
    out = arr.astype(np.int64)
    if levels is not None and out.size and (out.min() < 1 or out.max() > levels):
        raise ValueError(f"{name} must lie in 1..{levels}, got {out.min()}..{out.max()}")
    return out


def _probs(probs: ArrayLike, levels: int, n: int) -> FloatArray:
    """Probabilities as an (n, levels) float64 array of non-negative rows that sum to 1."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape != (n, levels):
        raise ValueError(f"probs must have shape ({n}, {levels}), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("probs must be finite and non-negative")
    if n and np.any(np.abs(arr.sum(axis=1) - 1.0) > PROBS_TOLERANCE):
        raise ValueError(f"every probs row must sum to 1 (tolerance {PROBS_TOLERANCE})")
    return arr


def _scores(scores: ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores must be finite")
    return arr


def _check_levels(levels: int) -> None:
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")


def default_relevant_level(levels: int) -> int:
    """The lowest label that counts as relevant for precision@k: ``K - 1`` (never below 2).

    With Pinterest's 5 levels that is 4 and above ("highly relevant" and "excellent"), with
    CrowdFlower's 4 levels 3 and above: the top two grades, which is what a user would accept
    in the first screen of results. The floor of 2 keeps ``K = 2`` meaningful (level 1 is
    always "not relevant").
    """
    _check_levels(levels)
    return max(levels - 1, 2)


# --------------------------------------------------------------------------------------------
# Point-wise metrics
# --------------------------------------------------------------------------------------------


def predicted_labels(probs: ArrayLike) -> IntArray:
    """Argmax level per row, numbered from 1; an exact tie goes to the lower level."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"probs must be 2-D, got shape {arr.shape}")
    return np.argmax(arr, axis=1).astype(np.int64) + 1


def prob_at_least(probs: ArrayLike, threshold: int) -> FloatArray:
    """``P(label >= threshold)`` per row: the sum of the probabilities from that level up.

    This is the natural score for the binary question "is this at least level t?", so each
    AUROC binarisation is scored by the probability mass the model puts on the positive side.
    """
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or not 1 <= threshold <= arr.shape[1]:
        raise ValueError(f"threshold must lie in 1..{arr.shape[1] if arr.ndim == 2 else '?'}")
    return arr[:, threshold - 1 :].sum(axis=1)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of rows whose predicted label equals the true label (exact-grade accuracy)."""
    t = _labels(y_true)
    p = _labels(y_pred, name="y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("accuracy of no rows is undefined")
    return float(np.mean(t == p))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, levels: int) -> IntArray:
    """Counts of (true level, predicted level): a ``levels x levels`` matrix, rows = truth.

    Row ``i`` (0-based) holds the rows whose true label is ``i + 1``; column ``j`` those predicted
    ``j + 1``. Every level gets a row and a column even when absent, so matrices of two models
    on the same data always line up.
    """
    _check_levels(levels)
    t = _labels(y_true, levels)
    p = _labels(y_pred, levels, name="y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:  # scikit-learn refuses empty input; no rows count nothing
        return np.zeros((levels, levels), dtype=np.int64)
    counts = sk.confusion_matrix(t, p, labels=np.arange(1, levels + 1))
    return np.asarray(counts, dtype=np.int64)


def quadratic_weighted_kappa(y_true: ArrayLike, y_pred: ArrayLike, levels: int) -> float | None:
    """Cohen's kappa with quadratic weights ``(i - j)^2 / (K - 1)^2``: agreement beyond chance.

    Why: accuracy treats predicting 4 for a true 5 as badly as predicting 1; the quadratic
    weights charge the squared distance between grades, and the chance correction (expected
    disagreement from the two marginals) keeps a model that always predicts the majority grade
    near 0. ``kappa = 1 - sum(W * O) / sum(W * E)`` with ``O`` the confusion matrix and
    ``E = outer(row totals, column totals) / n`` (scikit-learn's ``cohen_kappa_score``). Returns
    None for no rows, and when chance disagreement is 0 (both raters constant on the same
    level), where kappa is 0/0.
    """
    _check_levels(levels)
    t = _labels(y_true, levels)
    p = _labels(y_pred, levels, name="y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0 or np.unique(np.r_[t, p]).size == 1:
        return None
    labels = np.arange(1, levels + 1)
    return float(sk.cohen_kappa_score(t, p, labels=labels, weights="quadratic"))


def labels_from_cutoffs(scores: ArrayLike, cutoffs: ArrayLike) -> IntArray:
    """Level per row from an expected score and ``K - 1`` ascending cutoffs.

    ``level = 1 + #{c : score >= c}``: a score on a cutoff goes to the upper level. With the
    cutoffs 1.5, 2.5, ... this is rounding the expected score to the nearest level.
    """
    cut = np.asarray(cutoffs, dtype=np.float64)
    if cut.ndim != 1 or cut.size < 1 or np.any(np.diff(cut) < 0) or not np.all(np.isfinite(cut)):
        raise ValueError("cutoffs must be a non-empty ascending 1-D array of finite numbers")
    s = _scores(scores, int(np.asarray(scores).size))
    return (np.searchsorted(cut, s, side="right") + 1).astype(np.int64)


def fit_qwk_cutoffs(
    y_true: ArrayLike, scores: ArrayLike, levels: int, *, passes: int = 5
) -> FloatArray:
    """``K - 1`` cutoffs on the expected score that maximise QWK on a labelled (validation) set.

    Why: the argmax of a model trained with cross-entropy on skewed grades (61% of CrowdFlower
    is level 4) hugs the majority grade, and QWK charges every grade it compresses. Cutoffs on
    the expected score, fitted for QWK, spread the decoded grades the way the truth spreads.
    Fit them on held-out rows (never the test rows) and pass them to
    ``evaluate(..., cutoffs=...)``.

    Coordinate ascent from the rounding cutoffs (1.5, 2.5, ...): each cutoff in turn moves to
    the candidate (a midpoint between adjacent distinct scores, kept between its neighbours)
    with the highest QWK; a move must improve QWK strictly, so the result is deterministic and
    never worse on these rows than rounding. Stops after ``passes`` or when nothing moves.
    """
    _check_levels(levels)
    lab = _labels(y_true, levels)
    s = _scores(scores, lab.size)
    cut = np.arange(1, levels, dtype=np.float64) + 0.5
    uniq = np.unique(np.round(s, SCORE_DECIMALS))
    if uniq.size < 2:
        return cut
    candidates = (uniq[:-1] + uniq[1:]) / 2.0

    def qwk_of(c: FloatArray) -> float:
        value = quadratic_weighted_kappa(lab, labels_from_cutoffs(s, c), levels)
        return -math.inf if value is None else value

    best = qwk_of(cut)
    for _ in range(passes):
        moved = False
        for j in range(cut.size):
            lo = cut[j - 1] if j > 0 else -math.inf
            hi = cut[j + 1] if j + 1 < cut.size else math.inf
            for c in candidates[(candidates >= lo) & (candidates <= hi)]:
                trial = cut.copy()
                trial[j] = c
                value = qwk_of(trial)
                if value > best:
                    best, cut, moved = value, trial, True
        if not moved:
            break
    return cut


def _binary_inputs(
    positive: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """(positives as bool, rounded scores, n_pos, n_neg); None when only one class is present."""
    pos = np.asarray(positive)
    if pos.ndim != 1:
        raise ValueError(f"positive must be 1-D, got shape {pos.shape}")
    pos = pos.astype(bool)
    s = np.round(_scores(scores, pos.size), SCORE_DECIMALS)
    n_pos = int(pos.sum())
    n_neg = int(pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    return pos, s, n_pos, n_neg


def auroc(positive: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``); None with one class only.

    Tied points are joined by a straight line, so a positive/negative pair with equal scores
    counts as half a win (the Mann-Whitney U statistic over ``n_pos * n_neg``). Scores are
    rounded to ``SCORE_DECIMALS`` first so float noise does not split a tie.
    """
    binary = _binary_inputs(positive, scores)
    if binary is None:
        return None
    pos, s, _, _ = binary
    return float(sk.roc_auc_score(pos, s))


class RocCurve(NamedTuple):
    fpr: FloatArray  # false-positive rate of each point, from 0 up to 1
    tpr: FloatArray  # true-positive rate of each point, from 0 up to 1
    thresholds: FloatArray  # the point counts scores >= this as positive (first: +inf)


def roc_curve(positive: ArrayLike, scores: ArrayLike) -> RocCurve | None:
    """ROC points at every distinct score, descending (scikit-learn's ``roc_curve``, every
    point kept); None with one class only.

    One point per distinct (rounded) score, so a run of tied scores is one diagonal step: the
    straight line through tied points that gives a tied positive/negative pair half a win.
    The trapezoidal area under these points therefore equals ``auroc`` exactly. The curve
    starts at (0, 0) (threshold ``+inf``: nothing predicted positive) and ends at (1, 1).
    """
    binary = _binary_inputs(positive, scores)
    if binary is None:
        return None
    pos, s, _, _ = binary
    fpr, tpr, thresholds = sk.roc_curve(pos, s, drop_intermediate=False)
    return RocCurve(
        fpr=np.asarray(fpr, dtype=np.float64),
        tpr=np.asarray(tpr, dtype=np.float64),
        thresholds=np.asarray(thresholds, dtype=np.float64),
    )


# --------------------------------------------------------------------------------------------
# Ranking metrics (one query)
# --------------------------------------------------------------------------------------------


def _tie_groups(scores: FloatArray) -> tuple[IntArray, IntArray]:
    """Order by descending score and the tie-group id of each position in that order.

    Items in one tie group are interchangeable: callers average a per-item quantity over the
    group, which is the expectation under a uniformly random order within ties.
    """
    rounded = np.round(scores, SCORE_DECIMALS)
    order = np.argsort(-rounded, kind="stable").astype(np.int64)
    sorted_vals = rounded[order]
    new_group = np.r_[True, sorted_vals[1:] != sorted_vals[:-1]]
    return order, (np.cumsum(new_group) - 1).astype(np.int64)


def _expected_at_positions(values: FloatArray, scores: FloatArray, weights: FloatArray) -> float:
    """``E[sum_pos weights[pos] * values[item at pos]]`` under random tie-breaking.

    Within a tie group every item is equally likely at every position the group spans, so the
    expectation replaces each item's value by its group's mean value.
    """
    order, group = _tie_groups(scores)
    sorted_vals = values[order]
    group_mean = np.bincount(group, weights=sorted_vals) / np.bincount(group)
    return float(np.dot(group_mean[group], weights))


def gain(labels: ArrayLike) -> FloatArray:
    """Graded gain ``2^(label - 1) - 1``: level 1 (irrelevant) gains 0, each grade doubles.

    The exponential gain (Burges et al., the usual nDCG) rewards putting the best grades on
    top much more than shuffling the middle ones; subtracting 1 makes "not relevant" worth
    nothing, so a ranking of only irrelevant items has no DCG to speak of.
    """
    return np.exp2(_labels(labels).astype(np.float64) - 1.0) - 1.0


def ndcg_at_k(labels: ArrayLike, scores: ArrayLike, k: int = NDCG_K) -> float | None:
    """nDCG@k of one query's items, ranked by ``scores`` (descending); None if all labels equal.

    ``DCG@k = sum_{rank <= k} gain(label) / log2(rank + 1)`` with ``gain`` =
    ``2^(label - 1) - 1``; normalised by the DCG@k of the items sorted by true label
    (scikit-learn's ``ndcg_score`` over the gains). Ties in ``scores`` are scored as the
    expected DCG over all orders of the tied items (each equally likely), so input order never
    matters and a constant score earns the average of all rankings. A query whose items all
    share one label carries no ranking signal (every order is ideal, or the ideal DCG is 0), so
    it is undefined here and skipped in the mean.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lab = _labels(labels)
    s = _scores(scores, lab.size)
    if lab.size == 0 or np.all(lab == lab[0]):
        return None
    if lab.min() < 1:
        raise ValueError(f"labels must be levels numbered from 1, got {lab.min()}")
    rounded = np.round(s, SCORE_DECIMALS)  # float noise does not split a tie
    return float(sk.ndcg_score(gain(lab)[None, :], rounded[None, :], k=k))


def precision_at_k(relevant: ArrayLike, scores: ArrayLike, k: int = PRECISION_K) -> float:
    """Share of relevant items among the top ``min(k, n)`` of one query, ranked by ``scores``.

    The denominator is ``min(k, n)``: a query with fewer than ``k`` candidates can show only
    ``n`` results, and the metric should judge the ranking, not the size of the candidate set.
    Ties that straddle the cut-off count by expectation under random tie-breaking.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = np.asarray(relevant)
    if rel.ndim != 1 or rel.size == 0:
        raise ValueError("relevant must be a non-empty 1-D array")
    s = _scores(scores, rel.size)
    top = min(k, rel.size)
    in_top = (np.arange(rel.size) < top).astype(np.float64)
    return _expected_at_positions(rel.astype(np.float64), s, in_top) / top


# --------------------------------------------------------------------------------------------
# Ranking metrics (all queries)
# --------------------------------------------------------------------------------------------


def query_groups(queries: ArrayLike, locales: ArrayLike) -> list[tuple[str, str, IntArray]]:
    """Row indices of each ``(locale, query)`` pair, sorted by locale then query (deterministic)."""
    q = np.asarray(queries, dtype=object)
    loc = np.asarray(locales, dtype=object)
    if q.ndim != 1 or q.shape != loc.shape:
        raise ValueError(f"queries and locales must be 1-D of equal length: {q.shape}, {loc.shape}")
    frame = pd.DataFrame({"locale": loc.astype(str), "query": q.astype(str)})
    indices = frame.groupby(["locale", "query"], sort=True).indices
    return [
        (str(key[1]), str(key[0]), np.asarray(idx, dtype=np.int64))
        for key, idx in sorted(indices.items())
    ]


class NdcgSummary(NamedTuple):
    mean: float | None  # mean nDCG@k over queries with at least two distinct labels
    queries: int  # queries in the mean
    skipped: int  # queries whose items all share one label


def mean_ndcg_at_k(
    y_true: ArrayLike,
    scores: ArrayLike,
    queries: ArrayLike,
    locales: ArrayLike,
    k: int = NDCG_K,
) -> NdcgSummary:
    """Mean nDCG@k over ``(query, locale)`` groups, each query weighted equally.

    Equal weight per query (not per item) because the user experience is per query: a head
    query with 200 judged items should not drown out 20 tail queries.
    """
    lab = _labels(y_true)
    s = _scores(scores, lab.size)
    values: list[float] = []
    skipped = 0
    for _, _, idx in query_groups(queries, locales):
        v = ndcg_at_k(lab[idx], s[idx], k)
        if v is None:
            skipped += 1
        else:
            values.append(v)
    return NdcgSummary(float(np.mean(values)) if values else None, len(values), skipped)


class PrecisionSummary(NamedTuple):
    by_locale: dict[str, float]  # mean precision@k over the locale's queries
    queries: dict[str, int]  # queries per locale


def precision_at_k_by_locale(
    y_true: ArrayLike,
    scores: ArrayLike,
    queries: ArrayLike,
    locales: ArrayLike,
    *,
    relevant_level: int,
    k: int = PRECISION_K,
) -> PrecisionSummary:
    """Mean precision@k over the queries of each locale; relevant = ``label >= relevant_level``.

    Per locale because relevance quality differs by market and a global mean would be
    dominated by the largest one. Queries with no relevant item stay in (their precision is 0
    for every model), so every model is averaged over the same queries.
    """
    lab = _labels(y_true)
    s = _scores(scores, lab.size)
    relevant = lab >= relevant_level
    per_locale: dict[str, list[float]] = {}
    for _, locale, idx in query_groups(queries, locales):
        per_locale.setdefault(locale, []).append(precision_at_k(relevant[idx], s[idx], k))
    return PrecisionSummary(
        {loc: float(np.mean(v)) for loc, v in per_locale.items()},
        {loc: len(v) for loc, v in per_locale.items()},
    )


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def evaluate(
    y_true: ArrayLike,
    probs: ArrayLike,
    queries: ArrayLike,
    locales: ArrayLike,
    levels: int,
    *,
    ndcg_k: int = NDCG_K,
    precision_k: int = PRECISION_K,
    relevant_level: int | None = None,
    cutoffs: ArrayLike | None = None,
) -> dict[str, Any]:
    """All metrics of one model on one labelled set, as a JSON-serialisable dict.

    Keys: ``n``, ``levels``, ``accuracy``, ``auroc_ge_t`` for ``t = 2..K`` (positive =
    ``label >= t``, score = ``P(label >= t)``; None when one class only), ``ndcg_at_{k}``
    (None when every query is skipped), ``ndcg_queries``, ``ndcg_queries_skipped``,
    ``precision_at_{k}`` (locale -> mean), ``precision_at_{k}_queries`` (locale -> count),
    ``relevant_level``, ``qwk`` (None when undefined), ``confusion_matrix`` (rows = truth),
    ``mean_expected_score``, ``label_distribution`` and ``predicted_distribution`` (level as a
    string -> count). Only Python scalars, lists, dicts and None, so ``json.dumps`` works.

    With ``cutoffs`` (``K - 1`` ascending, fitted on other rows by ``fit_qwk_cutoffs``) the
    levels are also decoded from the expected score: ``cutoffs``, ``accuracy_cutoffs``,
    ``qwk_cutoffs``, ``confusion_matrix_cutoffs`` and ``predicted_distribution_cutoffs``.
    """
    _check_levels(levels)
    lab = _labels(y_true, levels)
    if lab.size == 0:
        raise ValueError("cannot evaluate zero rows")
    p = _probs(probs, levels, lab.size)
    rel_level = default_relevant_level(levels) if relevant_level is None else relevant_level
    if not 1 <= rel_level <= levels:
        raise ValueError(f"relevant_level must lie in 1..{levels}, got {rel_level}")
    pred = predicted_labels(p)
    score = expected_score(p)

    out: dict[str, Any] = {"n": int(lab.size), "levels": int(levels)}
    out["accuracy"] = accuracy(lab, pred)
    for t in range(2, levels + 1):
        out[f"auroc_ge_{t}"] = auroc(lab >= t, prob_at_least(p, t))
    ndcg = mean_ndcg_at_k(lab, score, queries, locales, ndcg_k)
    out[f"ndcg_at_{ndcg_k}"] = ndcg.mean
    out["ndcg_queries"] = ndcg.queries
    out["ndcg_queries_skipped"] = ndcg.skipped
    prec = precision_at_k_by_locale(
        lab, score, queries, locales, relevant_level=rel_level, k=precision_k
    )
    out[f"precision_at_{precision_k}"] = prec.by_locale
    out[f"precision_at_{precision_k}_queries"] = prec.queries
    out["relevant_level"] = int(rel_level)
    out["qwk"] = quadratic_weighted_kappa(lab, pred, levels)
    out["confusion_matrix"] = confusion_matrix(lab, pred, levels).tolist()
    out["mean_expected_score"] = float(score.mean())
    counts = np.bincount(lab - 1, minlength=levels)
    pred_counts = np.bincount(pred - 1, minlength=levels)
    out["label_distribution"] = {str(i + 1): int(c) for i, c in enumerate(counts)}
    out["predicted_distribution"] = {str(i + 1): int(c) for i, c in enumerate(pred_counts)}
    if cutoffs is not None:
        cut = np.asarray(cutoffs, dtype=np.float64)
        if cut.shape != (levels - 1,):
            raise ValueError(f"cutoffs must hold {levels - 1} values, got shape {cut.shape}")
        decoded = labels_from_cutoffs(score, cut)
        out["cutoffs"] = [float(c) for c in cut]
        out["accuracy_cutoffs"] = accuracy(lab, decoded)
        out["qwk_cutoffs"] = quadratic_weighted_kappa(lab, decoded, levels)
        out["confusion_matrix_cutoffs"] = confusion_matrix(lab, decoded, levels).tolist()
        decoded_counts = np.bincount(decoded - 1, minlength=levels)
        out["predicted_distribution_cutoffs"] = {
            str(i + 1): int(c) for i, c in enumerate(decoded_counts)
        }
    return out


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _sort_key_suffix(key: str, prefix: str) -> int:
    tail = key[len(prefix) :]
    return int(tail) if tail.isdigit() else 0


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metrics in display order, per-locale precision flattened to one column each."""
    row: dict[str, Any] = {}
    for key in ("n", "accuracy", "qwk"):
        if key in metrics:
            row[key] = metrics[key]
    aurocs = [k for k in metrics if k.startswith("auroc_ge_")]
    for key in sorted(aurocs, key=lambda k: _sort_key_suffix(k, "auroc_ge_")):
        row[key] = metrics[key]
    for key in metrics:
        if key.startswith("ndcg_at_"):
            row[key] = metrics[key]
    if "ndcg_queries_skipped" in metrics:
        row["ndcg_queries_skipped"] = metrics["ndcg_queries_skipped"]
    for key, value in metrics.items():
        if key.startswith("precision_at_") and isinstance(value, Mapping) and "queries" not in key:
            for locale in sorted(value):
                row[f"{key} {locale}"] = value[locale]
    if "mean_expected_score" in metrics:
        row["mean_expected_score"] = metrics["mean_expected_score"]
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(float(value)) else f"{float(value):.4f}"
    return str(value).replace("|", "\\|")


def to_markdown(metrics: Mapping[str, Any]) -> str:
    """A two-column markdown table (metric, value) of one model's headline metrics."""
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in _headline(metrics).items()]
    return "\n".join(lines) + "\n"


def compare_markdown(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """A markdown table with one row per model and one column per headline metric.

    Columns are the union over models, in first-seen order; a metric a model lacks shows "—",
    one it has but cannot define (None) shows "n/a".
    """
    heads = {name: _headline(m) for name, m in rows.items()}
    columns: list[str] = []
    for head in heads.values():
        columns += [c for c in head if c not in columns]
    lines = [
        "| model | " + " | ".join(_cell(c) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, head in heads.items():
        cells = [_cell(head[c]) if c in head else "—" for c in columns]
        lines.append(f"| {_cell(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "NDCG_K",
    "PRECISION_K",
    "SCORE_DECIMALS",
    "NdcgSummary",
    "PrecisionSummary",
    "RocCurve",
    "accuracy",
    "auroc",
    "compare_markdown",
    "confusion_matrix",
    "default_relevant_level",
    "evaluate",
    "gain",
    "mean_ndcg_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "precision_at_k_by_locale",
    "predicted_labels",
    "prob_at_least",
    "quadratic_weighted_kappa",
    "query_groups",
    "roc_curve",
    "to_markdown",
]
