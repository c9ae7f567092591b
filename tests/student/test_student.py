"""The student: loss shares, training from arrays, and an export that gives the same outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from searchrel.student.dataset import FeatureRows
from searchrel.student.model import ExportedStudent, StudentMeta, StudentNet, export_student
from searchrel.student.train import row_weights, soft_cross_entropy


def _rows(sources: list[str]) -> FeatureRows:
    n = len(sources)
    arr = np.array(sources, dtype=object)
    return FeatureRows(
        x=np.zeros((n, 4), np.float32), target=np.full((n, 3), 1 / 3, np.float32),
        weight=np.ones(n, np.float32), source=arr, split=arr, query=arr, locale=arr,
        item_id=arr, embedding_dim=1,
    )  # fmt: skip


def test_humans_and_teacher_get_their_configured_share_of_the_loss() -> None:
    rows = _rows(["human"] * 10 + ["teacher"] * 90)
    w = row_weights(rows, human_weight=0.3)
    human = rows.source == "human"
    assert abs(w[human].sum() - 0.3) < 1e-6
    assert abs(w[~human].sum() - 0.7) < 1e-6


def test_rater_weights_move_loss_within_the_humans_not_away_from_them() -> None:
    rows = _rows(["human"] * 10 + ["teacher"] * 90)
    rows.weight[:10] = np.linspace(0.2, 1.0, 10, dtype=np.float32)  # agreement weights
    w = row_weights(rows, human_weight=0.5)
    human = rows.source == "human"
    assert abs(w[human].sum() - 0.5) < 1e-6 and abs(w[~human].sum() - 0.5) < 1e-6
    assert abs(w[9] / w[0] - 5.0) < 1e-5  # a unanimous pair counts 5x a contested one


def test_soft_cross_entropy_equals_hard_cross_entropy_on_one_hot_targets() -> None:
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot), expected)


def test_the_exported_program_gives_the_trained_networks_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    net = StudentNet(10, [8], levels=5, dropout=0.1)
    net.set_normalisation(x)
    meta = StudentMeta(5, 10, 2, ["a"], [8], "pkg:x")
    meta = export_student(net, meta, tmp_path)
    loaded = ExportedStudent(tmp_path)
    with torch.inference_mode():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(loaded.predict_proba(x), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.predict_proba(x[:1]), expected[:1], atol=1e-6)
    assert loaded.meta.version == meta.version and meta.version.startswith("student-")
    # The export time the server publishes as the model's age (SearchrelServedModelStale).
    created = loaded.meta.created_timestamp()
    assert created is not None and abs(time.time() - created) < 600


def test_a_bundle_from_before_export_times_has_no_age() -> None:
    assert StudentMeta(5, 10, 2, ["a"], [8], "pkg:x").created_timestamp() is None
