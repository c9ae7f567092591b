"""Refit (``teacher.refit``): early stopping on the validation queries picks the epochs, then the
teacher trains again on every non-test query; the held-out run's validation predictions stay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

import searchrel.teacher.train as train_module
from searchrel.config import Config
from searchrel.tables import read_table
from searchrel.teacher.checkpoint import CHECKPOINT_DIR, save_checkpoint
from searchrel.teacher.model import MODEL_DIR, TeacherScorer
from searchrel.teacher.train import HELD_OUT_DIR, PREDICTIONS_FILE, SUMMARY_FILE, train_teacher

pytestmark = pytest.mark.slow


@pytest.fixture
def refit_config(encoder_config: Callable[..., Config]) -> Callable[..., Config]:
    def make(**teacher: object) -> Config:
        return encoder_config(
            epochs=3, early_stopping="val_qwk", learning_rate=3e-3, precision="fp32", **teacher
        )

    return make


def _weights(teacher_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(teacher_dir / MODEL_DIR / "model.safetensors")


def test_a_refit_trains_on_the_validation_queries_for_the_epochs_early_stopping_chose(
    tmp_path: Path, toy_tables: tuple[Path, Path], refit_config: Callable[..., Config]
) -> None:
    plain = train_teacher(*toy_tables, tmp_path / "plain", refit_config())
    refit = train_teacher(*toy_tables, tmp_path / "refit", refit_config(refit=True))
    held = refit["held_out"]
    # The held-out run is the plain run: same seed, same data, same model.
    assert held["teacher_version"] == plain["teacher_version"]
    assert held["best_epoch"] == plain["best_epoch"] and held["history"] == plain["history"]
    # The refit read every training and validation pair, for exactly that many epochs.
    assert refit["train_pairs"] == held["train_pairs"] + held["val_pairs"]
    assert refit["val_pairs"] == 0 and refit["epochs_run"] == held["best_epoch"]
    assert [set(h) for h in refit["history"]] == [{"epoch", "train_loss"}] * held["best_epoch"]
    assert refit["teacher_version"] != plain["teacher_version"]
    # Its validation predictions are the held-out model's, not its own.
    assert pq.read_table(tmp_path / "refit" / PREDICTIONS_FILE).equals(
        pq.read_table(tmp_path / "plain" / PREDICTIONS_FILE)
    )
    # held_out/ keeps what describes the run, not its weights; no checkpoint is left.
    held_dir = tmp_path / "refit" / HELD_OUT_DIR
    assert sorted(p.name for p in held_dir.iterdir()) == sorted([SUMMARY_FILE, PREDICTIONS_FILE])
    assert not (tmp_path / "refit" / CHECKPOINT_DIR).exists()
    assert TeacherScorer(tmp_path / "refit", device="cpu").version == refit["teacher_version"]


def test_validation_predictions_are_the_kept_models_probabilities_on_the_validation_pairs(
    tmp_path: Path, toy_tables: tuple[Path, Path], refit_config: Callable[..., Config]
) -> None:
    summary = train_teacher(*toy_tables, tmp_path / "t", refit_config())
    saved = read_table(tmp_path / "t" / PREDICTIONS_FILE, "validation_predictions", 3).table
    assert saved.num_rows == summary["val_pairs"] > 0
    items = {r["item_id"]: r for r in read_table(toy_tables[0], "items").table.to_pylist()}
    scorer = TeacherScorer(tmp_path / "t", device="cpu")
    rows = saved.to_pylist()
    probs = scorer.predict_proba(
        [r["query"] for r in rows], scorer.item_texts([items[r["item_id"]] for r in rows])
    )
    np.testing.assert_allclose(np.array([r["probs"] for r in rows]), probs, atol=1e-5)


def test_a_cut_refit_resumes_without_repeating_the_held_out_run(
    tmp_path: Path,
    toy_tables: tuple[Path, Path],
    refit_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = refit_config(refit=True)
    train_teacher(*toy_tables, tmp_path / "whole", cfg)
    cut = tmp_path / "cut"

    def die_in_the_refit(directory: Path, *args: object, **kwargs: object) -> None:
        save_checkpoint(directory, *args, **kwargs)  # type: ignore[arg-type]
        if directory == cut / CHECKPOINT_DIR:
            raise KeyboardInterrupt("killed after the refit's first checkpoint")

    monkeypatch.setattr(train_module, "save_checkpoint", die_in_the_refit)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(*toy_tables, cut, cfg)
    monkeypatch.undo()
    held_written = (cut / HELD_OUT_DIR / SUMMARY_FILE).stat().st_mtime_ns

    resumed = train_teacher(*toy_tables, cut, cfg)
    assert (cut / HELD_OUT_DIR / SUMMARY_FILE).stat().st_mtime_ns == held_written
    assert resumed["resumed_from_epoch"] == 1
    a, b = _weights(tmp_path / "whole"), _weights(cut)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5)
