"""Joining (query, item) pairs with the items they name; unknown items are quarantined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from searchrel.tables import QUARANTINE_SCHEMA


@dataclass
class JoinedPairs:
    """Pairs whose item is known, their item records, and the pairs that named unknown items."""

    pairs: pa.Table
    items: list[dict[str, Any]]
    quarantine: pa.Table


def join_items(pairs: pa.Table, items: pa.Table, table_name: str) -> JoinedPairs:
    by_id = {row["item_id"]: row for row in items.to_pylist()}
    ids = pairs.column("item_id").to_pylist()
    known = [i for i, item_id in enumerate(ids) if item_id in by_id]
    unknown = [i for i, item_id in enumerate(ids) if item_id not in by_id]
    quarantine = pa.table(
        {
            "table": [table_name] * len(unknown),
            "row_index": unknown,
            "reason": ["unknown_item"] * len(unknown),
            "row_json": [str(pairs.slice(i, 1).to_pylist()[0]) for i in unknown],
        },
        schema=QUARANTINE_SCHEMA,
    )
    return JoinedPairs(
        pairs=pairs.take(known), items=[by_id[ids[i]] for i in known], quarantine=quarantine
    )
