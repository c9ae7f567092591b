"""The (query, locale, item) pairs of an impression log: what labeling scores, once each, and
what ingest counts as never judged by a human."""

from __future__ import annotations

import pyarrow as pa

PAIR_KEY = ["query", "locale", "item_id"]


def distinct_pairs(impressions: pa.Table) -> pa.Table:
    """One row per (query, locale, item) however many times and positions it was shown."""
    grouped = impressions.select(PAIR_KEY).group_by(PAIR_KEY).aggregate([])
    return grouped.sort_by([(key, "ascending") for key in PAIR_KEY])


def never_judged(impressions: pa.Table, judgments: pa.Table) -> pa.Table:
    """The distinct logged pairs that no human judged."""
    judged = judgments.select(PAIR_KEY).group_by(PAIR_KEY).aggregate([])
    return distinct_pairs(impressions).join(judged, keys=PAIR_KEY, join_type="left anti")
