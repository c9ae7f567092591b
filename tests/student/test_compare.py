"""The paired bootstrap the deploy gate decides with, on constructed candidates whose quality
relative to the served model is known: worse is held, equal and better pass, and noise in the
fourth decimal on a handful of queries is not mistaken for a regression."""

from __future__ import annotations

import numpy as np
import pytest

from searchrel import metrics
from searchrel.student.compare import (
    UnknownMetricError,
    check_metric,
    metric_value,
    paired_bootstrap,
)

LEVELS = 5


def judged(queries: int, items: int = 8, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, LEVELS + 1, size=queries * items)
    return labels, [f"q{i // items}" for i in range(labels.size)]


def model(labels: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Probabilities peaked at the true level, blurred by ``noise`` (0: a perfect model)."""
    rng = np.random.default_rng(seed)
    centre = labels + rng.normal(0.0, noise, labels.size)
    levels = np.arange(1, LEVELS + 1)
    logits = -((levels[None, :] - centre[:, None]) ** 2)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def compare(new: np.ndarray, old: np.ndarray, labels: np.ndarray, queries: list[str],
            metric: str = "ndcg_at_20", **kw: float) -> object:  # fmt: skip
    return paired_bootstrap(labels, new, old, queries, ["en-US"] * len(queries), LEVELS, metric,
                            resamples=500, seed=1, **kw)  # fmt: skip


@pytest.mark.parametrize("metric", ["ndcg_at_20", "accuracy", "qwk", "auroc_ge_4"])
def test_a_clearly_worse_candidate_is_held_on_every_metric(metric: str) -> None:
    labels, queries = judged(30)
    served, worse = model(labels, 0.5, seed=1), model(labels, 2.5, seed=2)
    c = compare(worse, served, labels, queries, metric)
    assert c.delta < 0 and c.upper < 0 and c.worse_beyond(0.0)
    assert c.p_worse > 0.95


@pytest.mark.parametrize("metric", ["ndcg_at_20", "accuracy", "qwk", "auroc_ge_4"])
def test_a_better_candidate_passes_and_the_served_one_would_be_held_against_it(
    metric: str,
) -> None:
    labels, queries = judged(30)
    served, better = model(labels, 2.5, seed=1), model(labels, 0.5, seed=2)
    assert not compare(better, served, labels, queries, metric).worse_beyond(0.0)
    assert compare(served, better, labels, queries, metric).worse_beyond(0.0)


def test_an_identical_candidate_passes_with_a_zero_difference() -> None:
    labels, queries = judged(10)
    served = model(labels, 1.0, seed=1)
    c = compare(served.copy(), served, labels, queries)
    assert c.delta == 0 and c.lower == 0 and c.upper == 0 and c.p_worse == 0
    assert not c.worse_beyond(0.0)


def test_a_retrained_equal_model_slightly_behind_on_ten_queries_is_not_called_worse() -> None:
    """The demo's case: same recipe, other data, a regression in the fourth decimal."""
    labels, queries = judged(10)
    served = model(labels, 1.0, seed=1)
    rng = np.random.default_rng(5)
    candidate = served + rng.normal(0.0, 0.01, served.shape).clip(-0.01, 0.01)
    candidate = np.clip(candidate, 1e-6, None)
    candidate /= candidate.sum(axis=1, keepdims=True)
    c = compare(candidate, served, labels, queries)
    assert abs(c.delta) < 0.01
    assert c.lower <= c.delta <= c.upper
    assert not c.worse_beyond(0.0)


def test_max_regression_is_the_margin_the_candidate_may_trail_by() -> None:
    labels, queries = judged(30)
    served, worse = model(labels, 0.5, seed=1), model(labels, 2.5, seed=2)
    c = compare(worse, served, labels, queries)
    assert c.worse_beyond(0.0) and not c.worse_beyond(-c.delta + abs(c.upper) + 0.01)


def test_higher_confidence_needs_stronger_evidence_to_hold() -> None:
    labels, queries = judged(12)
    served, worse = model(labels, 1.0, seed=1), model(labels, 1.4, seed=2)
    loose = compare(worse, served, labels, queries, confidence=0.6)
    strict = compare(worse, served, labels, queries, confidence=0.99)
    assert loose.upper < strict.upper and loose.delta == strict.delta


def test_the_observed_values_are_the_metrics_of_the_whole_held_out_set() -> None:
    labels, queries = judged(12)
    served, new = model(labels, 1.0, seed=1), model(labels, 1.5, seed=2)
    locales = ["en-US"] * len(queries)
    c = compare(new, served, labels, queries)
    whole = metrics.evaluate(labels, new, queries, locales, LEVELS)
    assert c.candidate == pytest.approx(whole["ndcg_at_20"])
    assert metric_value(labels, served, queries, locales, LEVELS, "ndcg_at_20") == pytest.approx(
        c.reference
    )
    assert metric_value(labels, new, queries, locales, LEVELS, "qwk") == pytest.approx(whole["qwk"])


def test_the_same_inputs_give_the_same_decision() -> None:
    labels, queries = judged(10)
    a, b = model(labels, 1.0, seed=1), model(labels, 1.2, seed=2)
    assert compare(a, b, labels, queries) == compare(a, b, labels, queries)


def test_one_held_out_query_gives_no_spread() -> None:
    """Every draw is that one query again: the bounds are its own difference."""
    labels, queries = judged(1)
    served, new = model(labels, 0.5, seed=1), model(labels, 2.0, seed=2)
    c = compare(new, served, labels, queries)
    assert c.lower == c.upper == pytest.approx(c.delta)


@pytest.mark.parametrize("name", ["ndcg_at_x", "precision_at_8", "auroc_ge_9", "f1", ""])
def test_a_metric_it_cannot_resample_is_refused_by_name(name: str) -> None:
    with pytest.raises(UnknownMetricError, match=r"gate\.metric"):
        check_metric(name, LEVELS)


def test_a_metric_undefined_on_the_held_out_set_is_an_error_not_a_verdict() -> None:
    labels = np.full(16, 3)  # one label everywhere: no ranking signal, no AUROC
    queries = [f"q{i // 8}" for i in range(16)]
    probs = model(labels, 1.0, seed=1)
    with pytest.raises(ValueError, match="undefined"):
        compare(probs, probs, labels, queries, "auroc_ge_4")
