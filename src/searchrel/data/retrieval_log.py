"""A day's impression log where none was recorded: what the first stage would have shown.

For every query, the whole catalogue is ranked by the system's own first-stage signals, BM25
(``bm25_all``, summed over the text fields) and the query-item embedding cosine, both computed
by the serving featurizer (``PairFeaturizer``: the same BM25 statistics and encoder the student
reads), fused by reciprocal rank (Cormack et al., 2009). The top ``n`` items of each query form
the log. This is how a labeled data set without a log (CrowdFlower) gets the unjudged traffic
that daily labeling and distillation run on.

* Exclusions: pairs that must never be in the log (the judged test pairs of a benchmark) are
  dropped *before* the cut, so every query still gets ``n`` items when the catalogue has them.
* Nesting: one fixed total order per query (ties broken by the cosine, then by store row), so
  the log at ``n`` is a subset of the log at any larger ``n``.
* Engagement: none is known, and none is made up. The IMPRESSIONS contract needs counts, so
  each pair is written as shown once with no clicks, saves or close-ups; nothing should derive
  engagement features from such a log (a retrieved item would look "shown, never clicked"
  while an unretrieved one gets the catalogue prior: a relevance signal the log does not have).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from searchrel.features.pairs import PairFeaturizer
from searchrel.schema import IMPRESSIONS, SCALAR_FEATURES
from searchrel.splits import query_key

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.'s default)
BM25, COSINE = SCALAR_FEATURES.index("bm25_all"), SCALAR_FEATURES.index("cosine")
RANKED = pa.schema(
    [
        pa.field("query", pa.string(), nullable=False),
        pa.field("locale", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),  # 1 = shown first
        pa.field("bm25", pa.float32(), nullable=False),
        pa.field("cosine", pa.float32(), nullable=False),
        pa.field("fused", pa.float64(), nullable=False),  # the reciprocal-rank-fusion score
    ]
)


@dataclass
class RankedCatalogue:
    """The first ``depth`` items of each query, best first (RANKED rows, query by query)."""

    table: pa.Table
    depth: int
    cut: frozenset[tuple[str, str]]  # (query, locale) with more candidates than ``depth``


def min_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, highest score first; equal scores share the best rank among them (so
    the thousands of items without a query term all share one BM25 rank)."""
    ordered = np.sort(-scores)
    return np.searchsorted(ordered, -scores, side="left") + 1


def fused_order(bm25: np.ndarray, cosine: np.ndarray, k: int = RRF_K) -> tuple[np.ndarray, ...]:
    """The order of the items (indexes, best first) and their fused scores."""
    fused = 1.0 / (k + min_ranks(bm25)) + 1.0 / (k + min_ranks(cosine))
    order = np.lexsort((np.arange(len(fused)), -cosine, -fused))  # last key sorts first
    return order, fused


def rank_catalogue(
    featurizer: PairFeaturizer,
    queries: Sequence[tuple[str, str]],
    depth: int,
    item_locales: Sequence[str] | None = None,
    k: int = RRF_K,
) -> RankedCatalogue:
    """Rank the store's items for each ``(query, locale)``; keep the first ``depth``.

    ``item_locales`` (aligned with the store's rows) keeps each query to its own locale's
    items; None ranks the whole store for every query."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    n_items = len(featurizer.store.ids)
    locales = np.asarray(item_locales, dtype=object) if item_locales is not None else None
    if locales is not None and len(locales) != n_items:
        raise ValueError(f"{len(locales)} item locales for a store of {n_items} items")
    columns: dict[str, list[np.ndarray]] = {name: [] for name in RANKED.names}
    cut: set[tuple[str, str]] = set()
    for query, locale in tqdm(sorted(set(queries)), desc="first-stage retrieval", unit="query"):
        rows = np.arange(n_items) if locales is None else np.flatnonzero(locales == locale)
        if not len(rows):
            continue
        scalars = featurizer.featurize(query, rows).scalars
        bm25, cosine = scalars[:, BM25], scalars[:, COSINE]
        order, fused = fused_order(bm25, cosine, k)
        top = order[:depth]
        if len(rows) > depth:
            cut.add((query, locale))
        columns["query"].append(np.full(len(top), query, dtype=object))
        columns["locale"].append(np.full(len(top), locale, dtype=object))
        columns["item_id"].append(np.asarray(featurizer.store.ids, dtype=object)[rows[top]])
        columns["rank"].append(np.arange(1, len(top) + 1, dtype=np.int32))
        columns["bm25"].append(bm25[top])
        columns["cosine"].append(cosine[top])
        columns["fused"].append(fused[top])
    table = pa.table(
        {
            f.name: pa.array(
                np.concatenate(columns[f.name]) if columns[f.name] else [], type=f.type
            )
            for f in RANKED
        },
        schema=RANKED,
    )
    return RankedCatalogue(table, depth, frozenset(cut))


def impression_log(
    ranked: RankedCatalogue,
    n: int,
    date: dt.date,
    exclude: Collection[tuple[str, str]] = (),
    queries: Collection[str] | None = None,
) -> pa.Table:
    """The log of one day (IMPRESSIONS rows): each query's first ``n`` ranked items that are
    not in ``exclude``, for the ``queries`` given (all ranked ones when None).

    ``exclude`` and ``queries`` match by normalised query (``splits.query_key``), so a judged
    pair is left out however its query was spelled. Raises ValueError when a query runs out
    of ranked items before ``n`` because the ranking was cut at its depth (rank deeper)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    banned = {(query_key(q), item) for q, item in exclude}
    wanted = None if queries is None else {query_key(q) for q in queries}
    t = ranked.table
    keep: list[int] = []
    taken: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str]] = set()
    for i, (q, loc, item) in enumerate(
        zip(
            t.column("query").to_pylist(),
            t.column("locale").to_pylist(),
            t.column("item_id").to_pylist(),
            strict=True,
        )
    ):
        key = query_key(q)
        seen.add((q, loc))
        if (wanted is not None and key not in wanted) or (key, item) in banned:
            continue
        if taken.get((q, loc), 0) < n:
            taken[(q, loc)] = taken.get((q, loc), 0) + 1
            keep.append(i)
    short = sorted(
        q
        for q in seen & ranked.cut
        if (wanted is None or query_key(q[0]) in wanted) and taken.get(q, 0) < n
    )
    if short:
        raise ValueError(
            f"{len(short)} queries (e.g. {short[0][0]!r}) have fewer than {n} items left after "
            f"the exclusions in a ranking cut at depth {ranked.depth}: rank deeper"
        )
    rows = t.take(pa.array(keep, pa.int64()))
    size = rows.num_rows
    return pa.table(
        {
            "date": pa.array([date] * size, pa.date32()),
            "query": rows.column("query"),
            "locale": rows.column("locale"),
            "item_id": rows.column("item_id"),
            "impressions": pa.array(np.ones(size, np.int64)),
            "clicks": pa.array(np.zeros(size, np.int64)),
            "saves": pa.array(np.zeros(size, np.int64)),
            "closeups": pa.array(np.zeros(size, np.int64)),
        },
        schema=IMPRESSIONS,
    )
