"""The expected relevance level ``sum_k k * p_k`` (levels numbered from 1): the one score every
stage derives from K level probabilities. The metrics rank by it, the teacher's labels carry
it, the server returns it and the drift check compares the served one with the training rows'.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def expected_score(probs: ArrayLike) -> np.ndarray:
    """Expected level per row of an (n, K) probability array.

    Unlike the argmax it is continuous, so it orders items within a predicted grade by the
    model's confidence. float32 probabilities give float32 scores (what the server returns and
    the labels store); anything else is computed in float64.
    """
    arr = np.asarray(probs)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"probs must be 2-D, got shape {arr.shape}")
    return arr @ np.arange(1, arr.shape[1] + 1, dtype=arr.dtype)
