"""Every metric of searchrel.metrics against hand-computed values (arithmetic in the comments).

scikit-learn computes AUROC, ROC curves, the confusion matrix, QWK and nDCG; these tests are the
check that it agrees with the definitions (by hand, by formula, or by brute force)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from searchrel import metrics as m

LOG2_3 = math.log2(3)  # 1.5849625..., the discount denominator of rank 2


# --------------------------------------------------------------------------------------------
# Point-wise helpers
# --------------------------------------------------------------------------------------------


def test_predicted_label_is_the_argmax_level_and_a_tie_goes_low() -> None:
    probs = [[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]]
    # argmax + 1; the exact tie of row 1 goes to the lower level
    assert m.predicted_labels(probs).tolist() == [3, 1]


def test_prob_at_least_sums_mass_from_threshold_up() -> None:
    probs = [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]
    assert m.prob_at_least(probs, 1) == pytest.approx([1.0, 1.0])
    assert m.prob_at_least(probs, 2) == pytest.approx([0.9, 0.4])  # 0.2 + 0.7, 0.3 + 0.1
    assert m.prob_at_least(probs, 3) == pytest.approx([0.7, 0.1])
    with pytest.raises(ValueError):
        m.prob_at_least(probs, 4)


def test_accuracy_is_share_of_exact_grade_matches() -> None:
    # 3 of 4 match (the third row: 3 vs 2)
    assert m.accuracy([1, 2, 3, 3], [1, 2, 2, 3]) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        m.accuracy([1, 2], [1])


def test_confusion_matrix_rows_are_truth() -> None:
    cm = m.confusion_matrix([1, 1, 2, 3], [2, 1, 2, 3], levels=4)
    # truth 1 -> predicted 2 once and 1 once; truth 2 -> 2; truth 3 -> 3; level 4 absent
    assert cm.tolist() == [
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ]
    # asymmetric on purpose: (truth 1, pred 2) is counted, (truth 2, pred 1) is not
    assert cm[0, 1] == 1 and cm[1, 0] == 0
    with pytest.raises(ValueError):
        m.confusion_matrix([1, 5], [1, 1], levels=4)


# --------------------------------------------------------------------------------------------
# Quadratic weighted kappa
# --------------------------------------------------------------------------------------------


def test_qwk_perfect_agreement_is_one() -> None:
    assert m.quadratic_weighted_kappa([1, 2, 3, 4, 4], [1, 2, 3, 4, 4], levels=4) == 1.0


def test_qwk_3x3_matches_hand_arithmetic() -> None:
    y_true, y_pred = [1, 2, 3, 3], [1, 3, 3, 2]
    # O (rows truth): O[0,0]=1, O[1,2]=1, O[2,2]=1, O[2,1]=1
    # W = (i-j)^2 / (K-1)^2 = (i-j)^2 / 4: W[1,2] = W[2,1] = 1/4, W[0,2] = W[2,0] = 1
    # sum W*O = 1/4 + 1/4 = 0.5
    # row totals r = [1, 1, 2], column totals c = [1, 1, 2], n = 4, E = r c^T / 4:
    #   [[.25, .25, .5], [.25, .25, .5], [.5, .5, 1]]
    # sum W*E = .25*.25 + 1*.5 + .25*.25 + .25*.5 + 1*.5 + .25*.5 = 1.375
    # kappa = 1 - 0.5 / 1.375 = 1 - 4/11 = 7/11
    kappa = m.quadratic_weighted_kappa(y_true, y_pred, levels=3)
    assert kappa == pytest.approx(7 / 11)


def qwk_formula(y_true: list[int] | np.ndarray, y_pred: list[int] | np.ndarray, k: int) -> float:
    """1 - sum(W * O) / sum(W * E), W = (i - j)^2 / (K - 1)^2, E = outer(rows, columns) / n."""
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    observed = np.zeros((k, k))
    for t, p in zip(y_true, y_pred, strict=True):
        observed[t - 1, p - 1] += 1
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    return float(1 - (weights * observed).sum() / (weights * expected).sum())


def test_qwk_matches_its_formula_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(1, 6, size=200)
        y_pred = np.clip(y_true + rng.integers(-2, 3, size=200), 1, 5)
        ours = m.quadratic_weighted_kappa(y_true, y_pred, levels=5)
        assert ours == pytest.approx(qwk_formula(y_true, y_pred, 5))


def test_qwk_undefined_when_both_raters_constant() -> None:
    # E has all its mass on (2, 2) where W = 0: 0/0
    assert m.quadratic_weighted_kappa([2, 2, 2], [2, 2, 2], levels=3) is None
    # constant on different levels: O = E, so kappa = 1 - 1 = 0 (defined)
    assert m.quadratic_weighted_kappa([1, 1, 1], [2, 2, 2], levels=3) == 0.0


def test_no_rows_count_nothing_and_have_no_kappa() -> None:
    assert m.confusion_matrix([], [], levels=3).tolist() == [[0, 0, 0]] * 3
    assert m.quadratic_weighted_kappa([], [], levels=3) is None


# --------------------------------------------------------------------------------------------
# AUROC
# --------------------------------------------------------------------------------------------


def test_auroc_counts_tied_pairs_as_half_a_win() -> None:
    positive = [1, 1, 0, 0, 0]
    scores = [0.8, 0.5, 0.5, 0.2, 0.9]
    # pairs (pos, neg): 0.8 beats 0.5 and 0.2, loses to 0.9 -> 2
    #                   0.5 ties 0.5 (half), beats 0.2, loses to 0.9 -> 1.5
    # 3.5 wins over 2*3 = 6 pairs -> 7/12
    # midranks: 0.2 -> 1, 0.5 0.5 -> 2.5, 0.8 -> 4, 0.9 -> 5; R_pos = 4 + 2.5 = 6.5
    # (6.5 - 2*3/2) / 6 = 3.5 / 6
    assert m.auroc(positive, scores) == pytest.approx(7 / 12)


def test_auroc_perfect_reversed_constant_and_one_class() -> None:
    assert m.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert m.auroc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # every pair half a win
    assert m.auroc([1, 1, 1], [0.1, 0.2, 0.3]) is None
    assert m.auroc([0, 0], [0.1, 0.2]) is None


def test_auroc_float_noise_is_a_tie() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 != 0.3; after rounding it is a tie, so the AUC is 0.5
    assert m.auroc([1, 0], [0.1 + 0.2, 0.3]) == 0.5


def pairwise_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Every (positive, negative) pair: a win is 1, a tie half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


@pytest.mark.parametrize("seed", range(5))
def test_auroc_is_the_share_of_pairs_won_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(500) < 0.3
    continuous = rng.random(500) + 0.2 * positive
    assert m.auroc(positive, continuous) == pytest.approx(pairwise_auc(positive, continuous))
    coarse = np.round(continuous, 1)  # heavy ties
    assert m.auroc(positive, coarse) == pytest.approx(pairwise_auc(positive, coarse))


def test_roc_curve_steps_diagonally_through_ties_and_its_area_is_auroc() -> None:
    positive = [1, 1, 0, 0, 0]
    scores = [0.8, 0.5, 0.5, 0.2, 0.9]
    # distinct scores, descending (2 positives, 3 negatives):
    #   +inf: nothing positive          -> (0, 0)
    #   0.9 : one negative              -> (1/3, 0)
    #   0.8 : + one positive            -> (1/3, 1/2)
    #   0.5 : + one positive, one neg.  -> (2/3, 1)   one diagonal step for the tie
    #   0.2 : + one negative            -> (1, 1)
    curve = m.roc_curve(positive, scores)
    assert curve is not None
    assert curve.fpr == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert curve.tpr == pytest.approx([0, 0, 0.5, 1, 1])
    assert curve.thresholds.tolist() == [math.inf, 0.9, 0.8, 0.5, 0.2]
    # trapezoids: 0 + 0 + (1/3) * (0.5 + 1) / 2 + (1/3) * 1 = 0.25 + 0.3333 = 7/12 = auroc
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(7 / 12)
    assert m.roc_curve([1, 1], [0.1, 0.2]) is None  # one class: no curve


@pytest.mark.parametrize("seed", range(3))
def test_roc_curve_has_a_point_per_threshold_and_its_area_is_auroc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + 0.3 * positive, 1)  # heavy ties
    curve = m.roc_curve(positive, scores)
    assert curve is not None
    # at each distinct score t, descending: the shares of positives and negatives with >= t
    thresholds = np.unique(scores)[::-1]
    assert curve.thresholds.tolist() == [math.inf, *thresholds.tolist()]
    assert curve.tpr == pytest.approx([0, *[(scores[positive] >= t).mean() for t in thresholds]])
    assert curve.fpr == pytest.approx([0, *[(scores[~positive] >= t).mean() for t in thresholds]])
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(m.auroc(positive, scores))


# --------------------------------------------------------------------------------------------
# nDCG
# --------------------------------------------------------------------------------------------


def test_gain_is_two_to_the_label_minus_one_minus_one() -> None:
    # 2^(label-1) - 1: 1 -> 0, 2 -> 1, 3 -> 3, 4 -> 7, 5 -> 15
    assert m.gain([1, 2, 3, 4, 5]).tolist() == [0.0, 1.0, 3.0, 7.0, 15.0]


def test_ndcg_is_one_when_ideal_and_dcg_over_idcg_when_reversed() -> None:
    labels = [3, 2, 1]  # gains 3, 1, 0
    assert m.ndcg_at_k(labels, [3.0, 2.0, 1.0]) == pytest.approx(1.0)
    # reversed: order is label 1, 2, 3 -> DCG = 0/1 + 1/log2(3) + 3/log2(4) = 0.6309 + 1.5
    # ideal:    3/1 + 1/log2(3) + 0/2 = 3.6309
    expected = (1 / LOG2_3 + 3 / 2) / (3 + 1 / LOG2_3)  # = 0.58688...
    assert m.ndcg_at_k(labels, [1.0, 2.0, 3.0]) == pytest.approx(expected)
    assert expected == pytest.approx(2.13093 / 3.63093, abs=1e-5)  # 0.58688


def test_ndcg_at_20_of_five_level_query_is_dcg_over_idcg() -> None:
    labels, scores = [3, 5, 1, 4], [0.9, 0.8, 0.7, 0.1]
    # gain 2^(label-1) - 1: 3 -> 3, 5 -> 15, 1 -> 0, 4 -> 7
    # discounts 1/log2(rank+1): 1, 1/log2 3 = 0.63093, 1/2, 1/log2 5 = 0.43068
    # ranked by score, gains 3, 15, 0, 7:
    #   DCG  = 3*1 + 15*0.63093 + 0*0.5 + 7*0.43068 = 3 + 9.46395 + 0 + 3.01474 = 15.47868
    # ideal order, gains 15, 7, 3, 0:
    #   IDCG = 15*1 + 7*0.63093 + 3*0.5 + 0*0.43068 = 15 + 4.41651 + 1.5 + 0 = 20.91651
    # nDCG = 15.47868 / 20.91651 = 0.74002
    dcg = 3 + 15 / LOG2_3 + 7 / math.log2(5)
    idcg = 15 + 7 / LOG2_3 + 3 / 2
    assert m.ndcg_at_k(labels, scores, k=20) == pytest.approx(dcg / idcg)
    assert dcg / idcg == pytest.approx(0.74002, abs=1e-5)


def test_ndcg_ties_are_expected_over_tie_orders() -> None:
    # labels 3 and 1 with the same score: mean gain (3 + 0)/2 = 1.5 at ranks 1 and 2
    # expected DCG = 1.5 * (1 + 1/log2(3)) = 2.44639; ideal = 3 -> 0.81546
    # = average of the two orders: (1.0 + (3/log2(3))/3) / 2 = (1 + 0.63093) / 2
    value = m.ndcg_at_k([3, 1], [0.5, 0.5])
    assert value == pytest.approx(1.5 * (1 + 1 / LOG2_3) / 3)
    assert value == pytest.approx((1.0 + 1 / LOG2_3) / 2)
    # input order never matters
    assert m.ndcg_at_k([1, 3], [0.5, 0.5]) == pytest.approx(value)


def test_ndcg_ties_match_brute_force_over_permutations() -> None:
    rng = np.random.default_rng(7)
    for _ in range(10):
        labels = rng.integers(1, 5, size=6)
        if np.all(labels == labels[0]):
            continue
        scores = rng.integers(0, 3, size=6).astype(float)  # many ties
        for k in (1, 3, 20):
            # every order consistent with the scores, equally likely
            values = []
            for perm in itertools.permutations(range(6)):
                idx = np.array(perm)
                if np.all(np.diff(scores[idx]) <= 0):
                    gains = 2.0 ** (labels[idx] - 1) - 1
                    disc = 1 / np.log2(np.arange(2, 8))
                    ideal = np.sort(2.0 ** (labels - 1) - 1)[::-1]
                    values.append(np.sum((gains * disc)[:k]) / np.sum((ideal * disc)[:k]))
            assert m.ndcg_at_k(labels, scores, k) == pytest.approx(np.mean(values))


def test_ndcg_ignores_items_past_the_cutoff() -> None:
    labels, scores = [1, 1, 3], [3.0, 2.0, 1.0]
    # k=2: top two are label 1 (gain 0) -> DCG 0; ideal 3 -> 0
    assert m.ndcg_at_k(labels, scores, k=2) == 0.0
    # k=3: 3/log2(4) = 1.5; ideal 3 -> 0.5
    assert m.ndcg_at_k(labels, scores, k=3) == pytest.approx(0.5)
    # a tie straddling the cut-off: all tied, k=1 -> mean gain (3+0+0)/3 = 1 at rank 1; ideal 3
    assert m.ndcg_at_k([3, 1, 1], [1.0, 1.0, 1.0], k=1) == pytest.approx(1 / 3)


def test_ndcg_single_level_query_is_undefined() -> None:
    assert m.ndcg_at_k([2, 2, 2], [0.1, 0.5, 0.9]) is None
    assert m.ndcg_at_k([1, 1], [0.1, 0.5]) is None  # ideal DCG 0
    assert m.ndcg_at_k([4], [0.3]) is None
    assert m.ndcg_at_k([], []) is None


def test_mean_ndcg_over_query_locale_groups_skips_single_level() -> None:
    queries = ["a", "a", "a", "b", "b", "b", "c", "c", "a", "a"]
    locales = ["en"] * 8 + ["de", "de"]
    labels = [3, 2, 1, 3, 2, 1, 2, 2, 2, 1]
    scores = [3, 2, 1, 1, 2, 3, 1, 2, 0, 1]
    # (en, a): perfect -> 1.0
    # (en, b): reversed -> 0.58688 (see test_ndcg_is_one_when_ideal_and_dcg_over_idcg_when_reversed)
    # (en, c): both label 2 -> skipped
    # (de, a): distinct from (en, a); labels [2, 1] ranked 1 then 2 -> (0 + 1/log2 3) / 1
    summary = m.mean_ndcg_at_k(labels, scores, queries, locales, k=20)
    reversed_ndcg = (1 / LOG2_3 + 3 / 2) / (3 + 1 / LOG2_3)
    assert summary.mean == pytest.approx((1.0 + reversed_ndcg + 1 / LOG2_3) / 3)
    assert summary.queries == 3
    assert summary.skipped == 1


def test_mean_ndcg_all_skipped_is_none() -> None:
    summary = m.mean_ndcg_at_k([1, 1, 2], [0.1, 0.2, 0.3], ["a", "a", "b"], ["en"] * 3)
    assert summary == m.NdcgSummary(None, 0, 2)


# --------------------------------------------------------------------------------------------
# Precision@k
# --------------------------------------------------------------------------------------------


def test_precision_at_k_divides_by_min_of_k_and_n() -> None:
    relevant = [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    scores = np.arange(10, 0, -1, dtype=float)  # already ranked
    # top 8 hold items 0, 2, 5 relevant -> 3/8 (item 9 is cut off)
    assert m.precision_at_k(relevant, scores, k=8) == pytest.approx(3 / 8)
    # 3 items < k: denominator min(8, 3) = 3 -> 2/3, whatever the order
    assert m.precision_at_k([1, 1, 0], [3.0, 2.0, 1.0], k=8) == pytest.approx(2 / 3)
    assert m.precision_at_k([0, 1, 1], [3.0, 2.0, 1.0], k=8) == pytest.approx(2 / 3)


def test_precision_at_k_ties_straddling_cutoff() -> None:
    # all three tied, k=1: rank 1 is relevant with probability 1/3
    assert m.precision_at_k([1, 0, 0], [1.0, 1.0, 1.0], k=1) == pytest.approx(1 / 3)
    # k=2: item 0 (relevant) surely in, plus one of three tied items (1 of 3 relevant)
    # (1 + 1/3) / 2 = 2/3
    assert m.precision_at_k([1, 1, 0, 0], [2.0, 1.0, 1.0, 1.0], k=2) == pytest.approx(2 / 3)


def test_precision_at_8_per_locale_with_fewer_than_8_items() -> None:
    queries = ["q1"] * 10 + ["q2"] * 3 + ["q1"] * 2
    locales = ["en"] * 13 + ["de"] * 2
    labels = [*(5, 1, 4, 2, 3, 4, 1, 1, 1, 5), *(5, 4, 1), *(3, 1)]  # en q1 | en q2 | de q1
    scores = [*range(10, 0, -1), *(3, 2, 1), *(2, 1)]
    # relevant = label >= 4
    # (en, q1): top 8 labels 5 1 4 2 3 4 1 1 -> 3 relevant -> 3/8
    # (en, q2): 3 items, 2 relevant -> 2/3 (denominator min(8, 3) = 3)
    # (de, q1): 2 items, none relevant -> 0; a different query from (en, q1)
    summary = m.precision_at_k_by_locale(labels, scores, queries, locales, relevant_level=4, k=8)
    assert summary.by_locale == pytest.approx({"en": (3 / 8 + 2 / 3) / 2, "de": 0.0})
    assert summary.queries == {"en": 2, "de": 1}


def test_default_relevant_level_is_the_top_two_grades() -> None:
    assert m.default_relevant_level(5) == 4
    assert m.default_relevant_level(4) == 3
    assert m.default_relevant_level(2) == 2


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------

# K = 3, seven rows.     label  probs             E[level]                argmax
ROWS = [
    ("a", "en", 3, [0.1, 0.2, 0.7]),  # 0.1 + 0.4 + 2.1 = 2.6     3
    ("a", "en", 1, [0.6, 0.3, 0.1]),  # 0.6 + 0.6 + 0.3 = 1.5     1
    ("a", "en", 2, [0.2, 0.5, 0.3]),  # 0.2 + 1.0 + 0.9 = 2.1     2
    ("b", "en", 2, [0.3, 0.4, 0.3]),  # 0.3 + 0.8 + 0.9 = 2.0     2
    ("b", "en", 2, [0.5, 0.3, 0.2]),  # 0.5 + 0.6 + 0.6 = 1.7     1
    ("a", "de", 1, [0.2, 0.2, 0.6]),  # 0.2 + 0.4 + 1.8 = 2.4     3
    ("a", "de", 3, [0.7, 0.2, 0.1]),  # 0.7 + 0.4 + 0.3 = 1.4     1
]


def _evaluate_rows() -> dict:
    queries, locales, labels, probs = zip(*ROWS, strict=True)
    return m.evaluate(labels, np.array(probs), queries, locales, levels=3)


def test_evaluate_matches_hand_computed_metrics() -> None:
    out = _evaluate_rows()
    assert out["n"] == 7 and out["levels"] == 3
    # correct: rows 0, 1, 2, 3 -> 4/7
    assert out["accuracy"] == pytest.approx(4 / 7)
    # t=2: positives (label>=2) rows 0,2,3,4,6 with P(>=2) = .9 .8 .7 .5 .3;
    #      negatives rows 1,5 with .4 .8
    #      vs .4: .9 .8 .7 .5 win, .3 loses -> 4; vs .8: .9 wins, .8 ties -> 1.5; 5.5/10
    assert out["auroc_ge_2"] == pytest.approx(0.55)
    # t=3: positives rows 0,6 with P(3) = .7 .1; negatives .1 .3 .3 .2 .6
    #      .7 beats all 5 -> 5; .1 ties .1 -> 0.5; 5.5/10
    assert out["auroc_ge_3"] == pytest.approx(0.55)
    # nDCG@20 by E[level]:
    #   (de, a): labels [1, 3] ranked 1 then 3 -> (0 + 3/log2 3) / 3 = 1/log2 3 = 0.63093
    #   (en, a): ranked 3 (2.6), 2 (2.1), 1 (1.5): perfect -> 1
    #   (en, b): labels [2, 2] -> skipped
    assert out["ndcg_at_20"] == pytest.approx((1 / LOG2_3 + 1.0) / 2)
    assert out["ndcg_queries"] == 2 and out["ndcg_queries_skipped"] == 1
    # relevant_level = K - 1 = 2; precision@8 with min(8, n) denominators:
    #   (de, a): relevant [no, yes] -> 1/2;  (en, a): 2 of 3;  (en, b): 2 of 2
    #   de = 0.5, en = (2/3 + 1) / 2 = 5/6
    assert out["relevant_level"] == 2
    assert out["precision_at_8"] == pytest.approx({"de": 0.5, "en": 5 / 6})
    assert out["precision_at_8_queries"] == {"de": 1, "en": 2}
    # confusion (rows truth): truth 1 -> pred 1 (row 1), 3 (row 5)
    #                         truth 2 -> pred 2, 2, 1; truth 3 -> pred 3, 1
    assert out["confusion_matrix"] == [[1, 0, 1], [1, 2, 0], [1, 0, 1]]
    # QWK: sum W*O = O[0,2]*1 + O[1,0]*.25 + O[2,0]*1 = 2.25
    #      r = [2, 3, 2], c = [3, 2, 2], E = r c^T / 7
    #      sum W*E = (.25*4 + 1*4 + .25*9 + .25*6 + 1*6 + .25*4) / 7 = 15.75 / 7 = 2.25
    #      kappa = 1 - 2.25 / 2.25 = 0
    assert out["qwk"] == pytest.approx(0.0, abs=1e-12)
    # (2.6 + 1.5 + 2.1 + 2.0 + 1.7 + 2.4 + 1.4) / 7 = 13.7 / 7
    assert out["mean_expected_score"] == pytest.approx(13.7 / 7)
    assert out["label_distribution"] == {"1": 2, "2": 3, "3": 2}
    assert out["predicted_distribution"] == {"1": 3, "2": 2, "3": 2}


def test_evaluate_is_json_serialisable_and_none_for_one_class() -> None:
    # no label 5 anywhere -> auroc_ge_5 has one class only -> None
    rng = np.random.default_rng(3)
    n = 40
    labels = rng.integers(1, 5, size=n)
    probs = rng.dirichlet(np.ones(5), size=n)
    queries = [f"q{i % 6}" for i in range(n)]
    locales = ["en" if i % 2 else "fr" for i in range(n)]
    out = m.evaluate(labels, probs, queries, locales, levels=5)
    assert out["auroc_ge_5"] is None
    assert {f"auroc_ge_{t}" for t in range(2, 6)} <= out.keys()
    assert out["relevant_level"] == 4
    assert sum(map(sum, out["confusion_matrix"])) == n
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out


def test_evaluate_threshold_with_all_labels_on_one_side_is_none_not_a_crash() -> None:
    # K = 3, labels only 2 and 3: "label >= 2" has no negatives -> auroc_ge_2 is None;
    # "label >= 3" has both classes: positive row 1 (P(3) = .6) beats negative row 0 (.1) -> 1.0
    probs = np.array([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    out = m.evaluate([2, 3], probs, ["q", "q"], ["en", "en"], levels=3)
    assert out["auroc_ge_2"] is None
    assert out["auroc_ge_3"] == 1.0
    # and labels only 1: every binarisation has no positives
    out = m.evaluate([1, 1], probs, ["q", "q"], ["en", "en"], levels=3)
    assert out["auroc_ge_2"] is None and out["auroc_ge_3"] is None
    assert out["ndcg_at_20"] is None and out["ndcg_queries_skipped"] == 1  # single-level query
    json.dumps(out, allow_nan=False)  # None, never NaN
    assert "| auroc_ge_2 | n/a |" in m.to_markdown(out)


def test_evaluate_rejects_bad_input() -> None:
    probs = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="shape"):
        m.evaluate([1, 2], probs, ["a", "a"], ["en", "en"], levels=3)
    with pytest.raises(ValueError, match="sum to 1"):
        m.evaluate([1, 2], probs * 0.5, ["a", "a"], ["en", "en"], levels=2)
    with pytest.raises(ValueError, match=r"1\.\.2"):
        m.evaluate([1, 3], probs, ["a", "a"], ["en", "en"], levels=2)
    with pytest.raises(ValueError):
        m.evaluate([1, 2], probs, ["a"], ["en", "en"], levels=2)


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def test_to_markdown_lists_headline_metrics_to_four_decimals() -> None:
    text = m.to_markdown(_evaluate_rows())
    lines = text.strip().splitlines()
    assert lines[:2] == ["| metric | value |", "|---|---:|"]
    assert "| n | 7 |" in lines
    assert "| accuracy | 0.5714 |" in lines  # 4/7
    assert "| auroc_ge_2 | 0.5500 |" in lines
    assert "| ndcg_at_20 | 0.8155 |" in lines  # (0.63093 + 1) / 2
    assert "| precision_at_8 de | 0.5000 |" in lines
    assert "| precision_at_8 en | 0.8333 |" in lines
    assert "| mean_expected_score | 1.9571 |" in lines
    assert "confusion" not in text  # headline only


def test_compare_markdown_marks_missing_and_undefined_metrics() -> None:
    teacher = _evaluate_rows()
    student = dict(teacher, accuracy=0.5, qwk=None)
    del student["precision_at_8"]
    text = m.compare_markdown({"teacher": teacher, "student": student})
    header, rule, row_t, row_s = text.strip().splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:4] == ["model", "n", "accuracy", "qwk"]
    assert "precision_at_8 en" in columns
    assert rule.count("|") == len(columns) + 1
    cells_t = dict(zip(columns, (c.strip() for c in row_t.strip("|").split("|")), strict=True))
    cells_s = dict(zip(columns, (c.strip() for c in row_s.strip("|").split("|")), strict=True))
    assert cells_t["model"] == "teacher" and cells_t["accuracy"] == "0.5714"
    assert cells_s["accuracy"] == "0.5000"
    assert cells_s["qwk"] == "n/a"  # defined metric, undefined value
    assert cells_s["precision_at_8 en"] == "—"  # metric missing for that model


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_write_plots_writes_three_valid_non_trivial_pngs(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from searchrel.plots import write_plots

    _, _, labels, probs = zip(*ROWS, strict=True)
    out = _evaluate_rows()
    paths = write_plots(out, labels, np.array(probs), tmp_path / "plots", title="unit test")
    names = [p.name for p in paths]
    assert names == ["confusion_matrix.png", "roc_curves.png", "precision_at_8_by_locale.png"]
    for path in paths:
        assert path.is_file() and path.parent == tmp_path / "plots"
        assert path.stat().st_size > 5_000  # a drawn figure, not an empty canvas
        width, height = _png_size(path)
        assert width >= 300 and height >= 300
        pixels = imread(path)  # decodes as a whole
        assert pixels.shape[:2] == (height, width)
        assert np.ptp(pixels[..., :3]) > 0.5  # has ink on it, not one flat colour


def test_write_plots_survives_a_threshold_with_one_class(tmp_path: Path) -> None:
    from searchrel.plots import write_plots

    probs = np.array([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    out = m.evaluate([2, 3], probs, ["q", "q"], ["en", "en"], levels=3)
    assert out["auroc_ge_2"] is None
    paths = write_plots(out, [2, 3], probs, tmp_path)
    assert all(_png_size(p)[0] > 0 for p in paths)


def test_write_plots_rejects_arrays_that_do_not_match_the_result(tmp_path: Path) -> None:
    from searchrel.plots import write_plots

    _, _, labels, probs = zip(*ROWS, strict=True)
    out = _evaluate_rows()
    with pytest.raises(ValueError, match="do not match"):
        write_plots(out, labels[:-1], np.array(probs)[:-1], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


# --------------------------------------------------------------------------------------------
# Decoding the expected score with cutoffs
# --------------------------------------------------------------------------------------------


def test_labels_from_cutoffs_puts_a_score_on_a_cutoff_in_the_upper_level() -> None:
    scores = [1.2, 1.5, 2.49, 2.5, 3.9]
    assert m.labels_from_cutoffs(scores, [1.5, 2.5]).tolist() == [1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="ascending"):
        m.labels_from_cutoffs(scores, [2.5, 1.5])


def test_fitted_cutoffs_separate_grades_that_argmax_collapses_into_one() -> None:
    # Every expected score rounds to 3 (QWK 0 by rounding), but their order is perfect: the
    # fitted cutoffs must land between 2.65 | 2.70 and 2.75 | 2.80 and give QWK 1.
    labels = [1, 1, 2, 2, 3, 3]
    scores = [2.60, 2.65, 2.70, 2.75, 2.80, 2.85]
    assert m.quadratic_weighted_kappa(labels, m.labels_from_cutoffs(scores, [1.5, 2.5]), 3) in (
        None,
        0.0,
    )
    cut = m.fit_qwk_cutoffs(labels, scores, 3)
    assert cut.tolist() == pytest.approx([2.675, 2.775])
    assert m.quadratic_weighted_kappa(labels, m.labels_from_cutoffs(scores, cut), 3) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitted_cutoffs_are_ascending_and_never_worse_than_rounding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 5, size=300)
    scores = np.clip(labels * 0.3 + 2.0 + rng.normal(0, 0.4, size=300), 1, 4)
    cut = m.fit_qwk_cutoffs(labels, scores, 4)
    assert cut.shape == (3,) and np.all(np.diff(cut) >= 0)
    fitted = m.quadratic_weighted_kappa(labels, m.labels_from_cutoffs(scores, cut), 4)
    rounded = m.quadratic_weighted_kappa(labels, m.labels_from_cutoffs(scores, [1.5, 2.5, 3.5]), 4)
    assert fitted is not None and rounded is not None and fitted > rounded


def test_evaluate_with_cutoffs_decodes_the_expected_score() -> None:
    queries, locales, labels, probs = zip(*ROWS, strict=True)
    out = m.evaluate(labels, np.array(probs), queries, locales, levels=3, cutoffs=[1.6, 2.05])
    # E = 2.6 1.5 2.1 2.0 1.7 2.4 1.4 -> 3 1 3 2 2 3 1; truth 3 1 2 2 2 1 3 -> rows 0,1,3,4 right
    decoded = [3, 1, 3, 2, 2, 3, 1]
    assert out["accuracy_cutoffs"] == pytest.approx(4 / 7)
    assert out["qwk_cutoffs"] == pytest.approx(qwk_formula(labels, decoded, 3))
    assert out["predicted_distribution_cutoffs"] == {"1": 2, "2": 2, "3": 3}
    assert out["cutoffs"] == [1.6, 2.05]
    assert out["accuracy"] == pytest.approx(4 / 7)  # the argmax metrics stay as they were
    json.dumps(out)
    with pytest.raises(ValueError, match="cutoffs must hold 2"):
        m.evaluate(labels, np.array(probs), queries, locales, levels=3, cutoffs=[2.0])
