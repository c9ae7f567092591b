"""The expected score: the mean level under the model's distribution, in the input's precision."""

from __future__ import annotations

import numpy as np
import pytest

from searchrel.scores import expected_score


def test_expected_score_is_the_mean_level() -> None:
    probs = [[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]]
    # row 0: 1*0.2 + 2*0.3 + 3*0.5 = 0.2 + 0.6 + 1.5 = 2.3
    # row 1: 1*0.5 + 2*0.5 + 3*0.0 = 1.5
    assert expected_score(probs) == pytest.approx([2.3, 1.5])


def test_float32_probabilities_give_float32_scores_and_others_float64() -> None:
    probs = np.array([[0.25, 0.75]], dtype=np.float32)
    assert expected_score(probs).dtype == np.float32
    assert expected_score(probs.tolist()).dtype == np.float64
    assert expected_score(np.array([[0, 1]])).tolist() == [2.0]


def test_a_one_dimensional_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D"):
        expected_score([0.5, 0.5])
