"""Full fine-tuning: every weight trains, the model is saved once as safetensors, reloads to the
same logits, resumes after an interruption, and a real MiniLM learns the toy rule with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import searchrel.teacher.train as train_module
from searchrel.config import ConfigError, TeacherConfig, load_config
from searchrel.teacher.backbone import supports_sdpa
from searchrel.teacher.checkpoint import CHECKPOINT_DIR, save_checkpoint
from searchrel.teacher.model import MODEL_DIR, TeacherScorer, build_teacher
from searchrel.teacher.train import parameter_groups, train_teacher

pytestmark = pytest.mark.slow
QUERIES = ["garden idea 99", "cake idea 99"]
ROWS = [{"title": "roses in a garden bed 1", "description": "roses in a garden bed"}] * 2


def _weights(teacher_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(teacher_dir / MODEL_DIR / "model.safetensors")


def test_full_fine_tuning_trains_every_weight_and_saves_the_model_once_not_adapters(
    tmp_path: Path, toy_tables: tuple[Path, Path], encoder_config: Callable[..., object]
) -> None:
    cfg = encoder_config()
    model, _ = build_teacher(cfg.teacher, levels=3)  # type: ignore[attr-defined]
    assert all(p.requires_grad for p in model.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = train_teacher(*toy_tables, tmp_path / "t", cfg)  # type: ignore[arg-type]
    assert summary["finetune"] == "full" and summary["train_pairs_per_s"] > 0
    saved = _weights(tmp_path / "t")
    assert not (tmp_path / "t" / "adapter").exists()
    assert list((tmp_path / "t" / MODEL_DIR).glob("*.safetensors")) == [
        tmp_path / "t" / MODEL_DIR / "model.safetensors"
    ]
    # The encoder's own layers moved, not only the head.
    moved = [n for n, w in saved.items() if n in before and not torch.equal(w, before[n])]
    assert any("encoder.layer.0." in n for n in moved) and any("embeddings" in n for n in moved)
    assert not (tmp_path / "t" / CHECKPOINT_DIR).exists()


def test_a_saved_full_teacher_reloads_to_identical_logits(
    tmp_path: Path, toy_tables: tuple[Path, Path], encoder_config: Callable[..., object]
) -> None:
    train_teacher(*toy_tables, tmp_path / "t", encoder_config(precision="fp32"))  # type: ignore[arg-type]
    first, second = (TeacherScorer(tmp_path / "t", device="cpu") for _ in range(2))
    assert first.version == second.version and first.version.startswith("teacher-")
    texts = first.item_texts(ROWS)
    np.testing.assert_array_equal(
        first.predict_proba(QUERIES, texts), second.predict_proba(QUERIES, texts)
    )
    # ... and to the logits of the model as it was trained, read straight from its weights.
    from transformers import AutoModelForSequenceClassification

    raw = AutoModelForSequenceClassification.from_pretrained(tmp_path / "t" / MODEL_DIR).eval()
    enc = first.tokenizer(QUERIES, texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = torch.softmax(raw(**enc).logits, -1).numpy()
    np.testing.assert_allclose(first.predict_proba(QUERIES, texts), expected, atol=1e-5)


def test_an_interrupted_full_fine_tune_resumes_to_the_weights_of_an_uninterrupted_run(
    tmp_path: Path,
    toy_tables: tuple[Path, Path],
    encoder_config: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = encoder_config(precision="fp32")
    whole = train_teacher(*toy_tables, tmp_path / "whole", cfg)  # type: ignore[arg-type]

    def save_then_die(*args: object, **kwargs: object) -> None:
        save_checkpoint(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt("killed after the first checkpoint")

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(*toy_tables, tmp_path / "cut", cfg)  # type: ignore[arg-type]
    monkeypatch.undo()
    resumed = train_teacher(*toy_tables, tmp_path / "cut", cfg)  # type: ignore[arg-type]
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["history"] == whole["history"]
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5)


def test_early_stopping_on_validation_qwk_keeps_the_epoch_with_the_best_qwk(
    tmp_path: Path, toy_tables: tuple[Path, Path], encoder_config: Callable[..., object]
) -> None:
    cfg = encoder_config(epochs=3, patience=3, early_stopping="val_qwk", learning_rate=3e-3)
    summary = train_teacher(*toy_tables, tmp_path / "t", cfg)  # type: ignore[arg-type]
    qwks = [h["val_qwk"] for h in summary["history"]]
    assert summary["best_epoch"] == 1 + qwks.index(max(qwks))
    assert summary["best_val_loss"] == summary["history"][summary["best_epoch"] - 1]["val_loss"]


def test_full_fine_tuning_refuses_a_quantized_base() -> None:
    with pytest.raises(ConfigError, match="needs quantize: none"):
        load_config(overrides={"teacher": {"finetune": "full", "quantize": "4bit"}})


def test_layer_decay_slows_each_layer_below_the_head(tiny_bert: Path) -> None:
    model, _ = build_teacher(TeacherConfig(base_model=str(tiny_bert), finetune="full"), levels=3)
    groups = parameter_groups(model, 1e-3, 0.5)
    lrs = [g["lr"] for g in groups]
    # embeddings, layer 0, layer 1, head (+ pooler): each twice as fast as the one below
    np.testing.assert_allclose(lrs, [1e-3 / 8, 1e-3 / 4, 1e-3 / 2, 1e-3])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(parameter_groups(model, 1e-3, 1.0)) == 1


def test_mpnet_gets_its_own_lora_targets_and_eager_attention(tiny_mpnet: Path) -> None:
    assert not supports_sdpa(str(tiny_mpnet))
    model, _ = build_teacher(TeacherConfig(base_model=str(tiny_mpnet), lora_r=4), levels=3)
    targets = set(model.peft_config["default"].target_modules)  # type: ignore[index]
    assert targets == {"q", "k", "v", "o", "dense"}
    assert model.config._attn_implementation == "eager"


def test_a_fully_fine_tuned_minilm_learns_the_rule(
    tmp_path: Path, toy_tables: tuple[Path, Path]
) -> None:
    cfg = load_config(
        overrides={
            "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
            "teacher": {"finetune": "full", "epochs": 6, "max_length": 32,
                        "learning_rate": 2e-4, "patience": 6, "objective": "ordinal"},
        }
    )  # fmt: skip
    train_teacher(*toy_tables, tmp_path / "t", cfg)
    scorer = TeacherScorer(tmp_path / "t", device="cpu")
    probs = scorer.predict_proba(QUERIES, scorer.item_texts(ROWS))
    assert probs[0] @ np.arange(1, 4) > probs[1] @ np.arange(1, 4) + 0.5
