"""Train / validation / test assignment by query, so that evaluation is on unseen queries.

A query always lands in the same split (a salted hash), whatever table it appears in:
human judgments, teacher labels and student features agree without passing lists around.
"""

from __future__ import annotations

import hashlib

from searchrel.config import DataConfig


def query_key(query: str) -> str:
    return " ".join(query.lower().split())


def split_of(query: str, cfg: DataConfig) -> str:
    digest = hashlib.sha256(f"{cfg.split_salt}\x00{query_key(query)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < cfg.test_fraction:
        return "test"
    if u < cfg.test_fraction + cfg.val_fraction * (1 - cfg.test_fraction):
        return "val"
    return "train"
