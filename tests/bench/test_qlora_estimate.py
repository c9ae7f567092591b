"""The qLoRA memory estimate counts what bitsandbytes and peft really allocate."""

from __future__ import annotations

from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch

from bench.qlora_estimate import (
    LLAMA_3_8B,
    DecoderShape,
    estimate_qlora_memory,
    nf4_bytes,
)
from searchrel.teacher.backbone import load_backbone, prepare_for_training


@pytest.fixture(scope="module")
def small_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shaped like Llama (GQA, gated MLP) but small enough to quantize on a CPU in a second."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=128,
        intermediate_size=320,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=5,
        pad_token_id=0,
    )
    out = tmp_path_factory.mktemp("small_llama")
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(out)
    return out


def _stored_bytes(layer: bnb.nn.Linear4bit) -> int:
    state = layer.weight.quant_state
    tensors = [layer.weight.data, state.absmax, state.state2.absmax, state.offset]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_nf4_estimate_equals_the_bytes_bitsandbytes_stores(small_llama: Path) -> None:
    from transformers import AutoConfig

    model = load_backbone(str(small_llama), 5, 0, "4bit", torch.device("cpu"), None)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    shape = DecoderShape.from_config(AutoConfig.from_pretrained(small_llama))
    assert len(layers) == 7 * shape.num_hidden_layers
    assert all(m.weight.quant_state.nested for m in layers)  # double quantisation is on
    stored = sum(_stored_bytes(m) for m in layers)
    estimated = sum(nf4_bytes(a * b) for a, b in shape.linear_shapes().values())
    assert stored == estimated * shape.num_hidden_layers


def test_estimate_counts_the_fp32_and_trainable_parameters_peft_leaves(small_llama: Path) -> None:
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoConfig

    model = load_backbone(str(small_llama), 5, 0, "4bit", torch.device("cpu"), None)
    prepare_for_training(model, quantized=True, checkpointing=True)
    targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    peft_model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.SEQ_CLS, r=8, target_modules=list(targets), modules_to_save=["score"]
        ),
    )
    shape = DecoderShape.from_config(AutoConfig.from_pretrained(small_llama))
    est = estimate_qlora_memory(
        shape, levels=5, lora_r=8, target_modules=targets, batch_size=2, seq_len=16
    )
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert est.lora_parameters == trainable
    unquantized = [
        p
        for n, p in peft_model.named_parameters()
        if not p.requires_grad and not isinstance(p, bnb.nn.Params4bit)
    ]
    assert all(p.dtype == torch.float32 for p in unquantized)
    assert est.other_parameters == sum(p.numel() for p in unquantized)


def test_llama_3_8b_qlora_fits_one_24_gib_gpu_at_batch_8_by_512() -> None:
    est = estimate_qlora_memory(LLAMA_3_8B, levels=5, lora_r=16, batch_size=8, seq_len=512)
    assert est.quantized_parameters == pytest.approx(6.98e9, rel=0.01)  # 8.03B minus embeddings
    assert 3.2 < est.quantized_weights_gib < 3.5  # ~0.516 bytes per weight: 3.6 GB
    assert est.other_weights_gib == pytest.approx(128256 * 4096 * 4 / 2**30, rel=0.01)
    assert est.total_gib < 24
    no_ckpt = estimate_qlora_memory(
        LLAMA_3_8B, levels=5, lora_r=16, batch_size=8, seq_len=512, gradient_checkpointing=False
    )
    assert no_ckpt.activations_gib > 5 * est.activations_gib
