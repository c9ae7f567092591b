"""The impression log built by first-stage retrieval: it never holds an excluded (judged test)
pair, a larger log always contains the smaller one, and the ranking follows BM25 and the
embedding cosine of the serving featurizer."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchrel.config import FeatureConfig
from searchrel.data.retrieval_log import (
    RANKED,
    RankedCatalogue,
    fused_order,
    impression_log,
    min_ranks,
    rank_catalogue,
)
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer
from searchrel.features.store import ItemStore, build_item_store
from searchrel.tables import validate

DAY = dt.date(2026, 11, 2)


def _item(item_id: str, title: str, description: str, locale: str = "en-US") -> dict:
    return {
        "item_id": item_id, "locale": locale, "title": title, "description": description,
        "image_uri": None, "caption": None, "board_titles": None, "engaged_queries": None,
        "link_title": None, "link_description": None,
    }  # fmt: skip


CATALOGUE = [
    _item("vase-blue", "Blue ceramic vase", "A hand-thrown ceramic vase for the mantel"),
    _item("vase-glass", "Tall glass vase", "A clear vase for long-stemmed flowers"),
    _item("pot", "Terracotta flower pot", "A clay pot for herbs and flowers"),
    _item("cake", "Chocolate layer cake", "Rich chocolate cake with ganache"),
    _item("brownie", "Fudge brownies", "Dense chocolate squares baked in a tray"),
    _item("rug", "Wool rug", "A soft rug for the living room"),
    _item("lamp", "Brass desk lamp", "A reading lamp with an adjustable arm"),
    _item("vase-de", "Keramikvase blau", "Eine Vase aus Keramik", locale="de-DE"),
]
QUERIES = [("ceramic vase", "en-US"), ("chocolate cake", "en-US"), ("vase", "de-DE")]


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory: pytest.TempPathFactory) -> PairFeaturizer:
    cfg = FeatureConfig()
    embedder = Embedder.from_config(cfg)
    out: Path = tmp_path_factory.mktemp("store")
    build_item_store(pa.Table.from_pylist(CATALOGUE), None, embedder, cfg, out)
    return PairFeaturizer(ItemStore(out), embedder, cfg)


def _locales(featurizer: PairFeaturizer) -> list[str]:
    by_id = {i["item_id"]: i["locale"] for i in CATALOGUE}
    return [by_id[i] for i in featurizer.store.ids]


def _pairs(log: pa.Table) -> set[tuple[str, str]]:
    return set(zip(log.column("query").to_pylist(), log.column("item_id").to_pylist(), strict=True))


def test_items_sharing_the_query_terms_rank_first_then_items_close_in_meaning(
    featurizer: PairFeaturizer,
) -> None:
    ranked = rank_catalogue(featurizer, QUERIES, depth=10, item_locales=_locales(featurizer))
    by_query: dict[str, list[str]] = {}
    for r in ranked.table.to_pylist():
        by_query.setdefault(r["query"], []).append(r["item_id"])
    assert by_query["ceramic vase"][0] == "vase-blue"  # both terms, closest embedding
    assert by_query["ceramic vase"][1] == "vase-glass"  # one term
    assert by_query["chocolate cake"][:2] == ["cake", "brownie"]
    # No term in common: the embedding still puts the brownies above a rug and a lamp.
    assert by_query["chocolate cake"].index("brownie") < by_query["chocolate cake"].index("rug")
    # Each query sees its own locale's items only, and ranks are 1..n without gaps.
    assert by_query["vase"] == ["vase-de"]
    assert len(by_query["ceramic vase"]) == 7
    ranks = [r["rank"] for r in ranked.table.to_pylist() if r["query"] == "ceramic vase"]
    assert ranks == list(range(1, 8))


def test_the_log_never_holds_an_excluded_pair_however_its_query_is_spelled(
    featurizer: PairFeaturizer,
) -> None:
    ranked = rank_catalogue(featurizer, QUERIES, depth=10, item_locales=_locales(featurizer))
    judged_test = [("Ceramic  VASE", "vase-blue"), ("chocolate cake", "cake")]
    log = impression_log(ranked, 3, DAY, exclude=judged_test)
    pairs = _pairs(log)
    assert ("ceramic vase", "vase-blue") not in pairs and ("chocolate cake", "cake") not in pairs
    # The cut comes after the exclusions: every query still gets its n items.
    counts = {q: sum(1 for p in pairs if p[0] == q) for q in ("ceramic vase", "chocolate cake")}
    assert counts == {"ceramic vase": 3, "chocolate cake": 3}
    assert ("ceramic vase", "vase-glass") in pairs  # the next best took the place


def test_the_log_keeps_to_the_queries_asked_for_and_meets_the_impressions_contract(
    featurizer: PairFeaturizer,
) -> None:
    ranked = rank_catalogue(featurizer, QUERIES, depth=10, item_locales=_locales(featurizer))
    log = impression_log(ranked, 2, DAY, queries=["CHOCOLATE cake"])
    assert set(log.column("query").to_pylist()) == {"chocolate cake"}
    checked = validate(log, "impressions")
    assert checked.quarantine.num_rows == 0 and checked.table.num_rows == 2
    # Shown once, no engagement made up.
    assert set(log.column("impressions").to_pylist()) == {1}
    for name in ("clicks", "saves", "closeups"):
        assert set(log.column(name).to_pylist()) == {0}
    assert set(log.column("date").to_pylist()) == {DAY}


def test_a_ranking_too_shallow_for_the_exclusions_is_refused(featurizer: PairFeaturizer) -> None:
    ranked = rank_catalogue(featurizer, QUERIES, depth=3, item_locales=_locales(featurizer))
    with pytest.raises(ValueError, match="rank deeper"):
        impression_log(ranked, 3, DAY, exclude=[("ceramic vase", "vase-blue")])
    # A query whose locale simply has fewer items is not short of depth: it gets what exists.
    assert impression_log(ranked, 3, DAY, queries=["vase"]).num_rows == 1


def test_ranking_twice_gives_the_same_order(featurizer: PairFeaturizer) -> None:
    first = rank_catalogue(featurizer, QUERIES, depth=10)
    again = rank_catalogue(featurizer, list(reversed(QUERIES)), depth=10)
    assert first.table.equals(again.table)


def test_equal_scores_share_the_best_rank_among_them() -> None:
    np.testing.assert_array_equal(min_ranks(np.array([0.0, 2.0, 0.0, 1.0])), [3, 1, 3, 2])


def test_fusion_breaks_ties_by_cosine_then_by_store_row() -> None:
    bm25 = np.zeros(4)
    order, _ = fused_order(bm25, np.array([0.1, 0.5, 0.5, 0.9]))
    assert order.tolist() == [3, 1, 2, 0]


# --------------------------------------------------------------------------------------------
# The invariants over any ranking, exclusion set and sizes (no model needed)
# --------------------------------------------------------------------------------------------


def _synthetic(n_queries: int, n_items: int, depth: int, seed: int) -> RankedCatalogue:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        for rank, item in enumerate(rng.permutation(n_items)[:depth], start=1):
            rows.append({"query": f"query {q}", "locale": "en-US", "item_id": f"i{item}",
                         "rank": rank, "bm25": 0.0, "cosine": 0.0, "fused": 1 / rank})  # fmt: skip
    cut = frozenset((f"query {q}", "en-US") for q in range(n_queries) if depth < n_items)
    return RankedCatalogue(pa.Table.from_pylist(rows, schema=RANKED), depth, cut)


@settings(max_examples=60, deadline=None)
@given(
    n_queries=st.integers(1, 5),
    n_items=st.integers(1, 30),
    seed=st.integers(0, 10_000),
    excluded=st.sets(st.tuples(st.integers(0, 4), st.integers(0, 29)), max_size=40),
    sizes=st.lists(st.integers(1, 30), min_size=2, max_size=4, unique=True),
)
def test_no_excluded_pair_ever_and_every_larger_log_contains_the_smaller(
    n_queries: int,
    n_items: int,
    seed: int,
    excluded: set[tuple[int, int]],
    sizes: list[int],
) -> None:
    ranked = _synthetic(n_queries, n_items, depth=n_items, seed=seed)  # whole catalogue ranked
    exclude = [(f"QUERY  {q}", f"i{i}") for q, i in excluded]  # spelled differently
    banned = {(f"query {q}", f"i{i}") for q, i in excluded}
    logs = {n: _pairs(impression_log(ranked, n, DAY, exclude=exclude)) for n in sorted(sizes)}
    for n, pairs in logs.items():
        assert not pairs & banned
        for q in range(n_queries):
            allowed = n_items - sum(1 for eq, ei in excluded if eq == q and ei < n_items)
            assert sum(1 for p in pairs if p[0] == f"query {q}") == min(n, allowed)
    ordered = sorted(logs)
    for small, large in itertools.pairwise(ordered):
        assert logs[small] <= logs[large]
