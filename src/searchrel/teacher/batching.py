"""Length-sorted batches under a token budget: the cheap half of fast inference.

Sorting by length makes each batch's sequences nearly equal, so dynamic padding adds little;
the token budget (pairs x longest pair) keeps long batches from blowing up memory while short
ones grow large enough to keep every core (or the GPU) busy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np


def token_budget_batches(
    lengths: Sequence[int], max_pairs: int, max_tokens: int
) -> Iterator[np.ndarray]:
    """Indices of each batch, shortest pairs first; padded size never exceeds ``max_tokens``.

    A single pair longer than the budget still gets a batch of its own (it cannot be split).
    """
    if max_pairs < 1 or max_tokens < 1:
        raise ValueError("max_pairs and max_tokens must be positive")
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_pairs:
            longest = lengths[order[end]]  # sorted: the newest pair is the longest
            if (end - start + 1) * longest > max_tokens:
                break
            end += 1
        yield order[start:end]
        start = end


def padded_tokens(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> int:
    """Tokens the model actually processes, padding included."""
    return int(sum(len(b) * max(lengths[i] for i in b) for b in batches))


def pad_batch(
    encoded: Mapping[str, Sequence[Sequence[int]]],
    idx: Sequence[int],
    pad_token_id: int,
    padding_side: str = "right",
) -> dict[str, np.ndarray]:
    """The batch ``idx`` of unpadded encodings as padded int64 arrays (numpy, no Python per
    token): what ``tokenizer.pad`` returns, without its per-example Python overhead."""
    lengths = [len(encoded["input_ids"][i]) for i in idx]
    width = max(lengths)
    out: dict[str, np.ndarray] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in encoded:
            continue
        fill = pad_token_id if key == "input_ids" else 0
        arr = np.full((len(idx), width), fill, dtype=np.int64)
        for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
            values = encoded[key][i]
            if padding_side == "left":
                arr[row, width - n :] = values
            else:
                arr[row, :n] = values
        out[key] = arr
    return out


BUCKET_POOL = 50  # batches per pool that is sorted by length: wide enough to bucket, still random


def training_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, by_length: bool
) -> list[np.ndarray]:
    """One epoch's batches of positions into ``lengths``, every position exactly once.

    ``by_length``: shuffle, cut into pools of ``BUCKET_POOL`` batches, sort each pool by length
    and shuffle the batches, so that every batch holds pairs of similar length (little padding)
    while the epoch still visits the data in a random order. Otherwise a plain shuffle.
    """
    order = rng.permutation(len(lengths))
    if by_length:
        pool = BUCKET_POOL * batch_size
        sizes = np.asarray(lengths, dtype=np.int64)
        order = np.concatenate(
            [
                chunk[np.argsort(sizes[chunk], kind="stable")]
                for chunk in (order[i : i + pool] for i in range(0, len(order), pool))
            ]
            or [order]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
