"""The distillation bench's students: every arm uses the same seeds, and a fit repeated with
the same seeds gives the same figures (so arms compare seed by seed, and a resumed run's arms
match a whole run's)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.distillation_common import HeldOutPairs, concat, fit_arm, rows_of, student_seeds
from searchrel.config import StudentConfig

LEVELS = 4
SMALL = StudentConfig(hidden=[16], epochs=6, patience=6, batch_size=32)


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    labels = np.clip(np.round(1.5 * x[:, 0] + 2.5 + 0.5 * rng.normal(size=n)), 1, 4).astype(int)
    return x, labels


def _onehot(labels: np.ndarray) -> np.ndarray:
    return np.eye(LEVELS, dtype=np.float32)[labels - 1]


@pytest.fixture(scope="module")
def arm_inputs() -> tuple:
    x, y = _data(0, 240)
    xv, yv = _data(1, 60)
    xt, yt = _data(2, 80)
    human = rows_of(x[:120], _onehot(y[:120]), "human", 1)
    soft = np.full((120, LEVELS), 0.1, np.float32)
    soft[np.arange(120), y[120:] - 1] = 0.7
    train = concat([human, rows_of(x[120:], soft, "teacher", 1)])
    val = rows_of(xv, _onehot(yv), "human", 1)
    queries = np.array([f"q{i // 10}" for i in range(80)], dtype=object)
    test = HeldOutPairs(xt, yt, queries, np.array(["en-US"] * 80, dtype=object), LEVELS)
    return train, val, test


def test_every_arm_gets_the_same_seeds_derived_from_the_bench_seed() -> None:
    assert student_seeds(13, 5) == [13, 14, 15, 16, 17]
    assert student_seeds(13, 5) == student_seeds(13, 5)
    with pytest.raises(ValueError):
        student_seeds(13, 0)


def test_an_arm_fitted_again_with_the_same_seeds_gives_the_same_figures(arm_inputs: tuple) -> None:
    train, val, test = arm_inputs
    first = fit_arm(train, val, test, [3, 4], SMALL)
    again = fit_arm(train, val, test, [3, 4], SMALL)
    assert first["seeds"] == again["seeds"] == [3, 4]
    assert first["per_seed"] == again["per_seed"]
    assert first["epochs_run"] == again["epochs_run"]
    assert first["rows_by_source"] == {"human": 120, "teacher": 120}
    # The seed is what moves a fit: another seed gives another network.
    other = fit_arm(train, val, test, [5, 6], SMALL)
    assert other["per_seed"]["val_loss"] != first["per_seed"]["val_loss"]


def test_an_arm_reports_the_mean_and_sd_of_its_seeds(arm_inputs: tuple) -> None:
    train, val, test = arm_inputs
    arm = fit_arm(train, val, test, [3, 4, 5], SMALL)
    accuracies = arm["per_seed"]["accuracy"]
    assert len(accuracies) == 3
    assert arm["accuracy"] == pytest.approx(np.mean(accuracies))
    assert arm["sd"]["accuracy"] == pytest.approx(np.std(accuracies))
    assert 0.0 <= arm["accuracy"] <= 1.0 and arm["val_loss"] > 0
