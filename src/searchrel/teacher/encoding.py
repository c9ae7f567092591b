"""Turning (query, item) into the teacher's input: query, separator, item text.

The item text is a template over the configured fields; each field is cut to a token budget
*before* the pair is assembled, so a long description cannot crowd out the caption or the
engaged queries. Works with any fast tokenizer (encoders and decoders alike): where the
tokenizer's pair template puts nothing between query and item (Qwen, many decoders), a newline
does, so the query's last word never runs into the item text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerBase

from searchrel.text import FIELD_LABELS, clean_text, field_text


def _cut_to_tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], budget: int) -> list[str]:
    """Each text cut at the end of its `budget`-th token (character offsets keep it exact)."""
    if not texts:
        return []
    enc = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=budget,
        return_offsets_mapping=True,
    )
    out = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        end = max((e for _, e in offsets), default=0)
        out.append(text[:end].strip())
    return out


def item_texts(
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
    field_max_tokens: int,
) -> list[str]:
    """The teacher's item text for each item, fields in order, each within its token budget."""
    per_field = {
        name: _cut_to_tokens(
            tokenizer, [field_text(item, name) for item in items], field_max_tokens
        )
        for name in fields
    }
    texts = []
    for i in range(len(items)):
        parts = [
            f"{FIELD_LABELS.get(name, name)}: {per_field[name][i]}"
            for name in fields
            if per_field[name][i]
        ]
        texts.append(" | ".join(parts))
    return texts


TEXT_SEPARATOR = "\n"  # between query and item when the tokenizer's template has no separator


def pair_separator(tokenizer: PreTrainedTokenizerBase) -> str:
    """Nothing where the pair template separates the segments ([SEP], a BOS), else a newline."""
    single, pair = (tokenizer.num_special_tokens_to_add(pair=p) for p in (False, True))
    return "" if pair > single else TEXT_SEPARATOR


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    texts: Sequence[str],
    max_length: int,
) -> BatchEncoding:
    """Tokenize query/item pairs without padding (batches pad dynamically).

    Longest-first truncation cuts the item while it is the longer text, as the item alone
    would be cut, and a query too long to leave the item room shares the budget with it:
    cutting the item alone raises on such a query (a logged query, a client's), and a label
    or a score is still owed for it."""
    separator = pair_separator(tokenizer)
    return tokenizer(
        [clean_text(q) for q in queries],
        [separator + t for t in texts],
        truncation="longest_first",
        max_length=max_length,
        padding=False,
    )
