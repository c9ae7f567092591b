"""Pair features: the same code path for training rows and for serving."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from searchrel.config import DataConfig, FeatureConfig
from searchrel.features.build import without_test_queries
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer, assemble_inputs
from searchrel.features.store import ItemStore, build_item_store, engagement_rates
from searchrel.schema import IMPRESSIONS, SCALAR_FEATURES
from searchrel.splits import split_of

COL = {name: i for i, name in enumerate(SCALAR_FEATURES)}


def _item(item_id: str, title: str, description: str = "") -> dict:
    return {
        "item_id": item_id, "locale": "en-US", "title": title, "description": description,
        "image_uri": None, "caption": None, "board_titles": ["Home"], "engaged_queries": None,
        "link_title": None, "link_description": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory: pytest.TempPathFactory) -> PairFeaturizer:
    items = pa.Table.from_pylist(
        [
            _item("vase", "Blue ceramic vase", "A hand-thrown ceramic vase for the mantel"),
            _item("cake", "Chocolate layer cake", "Rich chocolate cake with ganache"),
            _item("rug", "Wool rug", "A soft rug"),
        ]
    )
    day = dt.date(2026, 11, 1)
    impressions = pa.Table.from_pylist(
        [
            {"date": day, "query": "vase", "locale": "en-US", "item_id": "vase",
             "impressions": 1000, "clicks": 100, "saves": 50, "closeups": 200},
            {"date": day, "query": "cake", "locale": "en-US", "item_id": "cake",
             "impressions": 2, "clicks": 2, "saves": 2, "closeups": 2},
        ]
    )  # fmt: skip
    cfg = FeatureConfig()
    embedder = Embedder.from_config(cfg)
    out = tmp_path_factory.mktemp("store")
    build_item_store(items, impressions, embedder, cfg, out)
    return PairFeaturizer(ItemStore(out), embedder, cfg)


def test_bm25_and_coverage_favour_the_item_that_holds_the_query_terms(
    featurizer: PairFeaturizer,
) -> None:
    rows, missing = featurizer.store.rows_of(["vase", "cake", "rug"])
    assert not missing
    f = featurizer.featurize("ceramic vase", rows).scalars
    assert f[0, COL["bm25_title"]] > 0 and f[1, COL["bm25_title"]] == 0
    assert f[0, COL["term_coverage_title"]] == 1.0 and f[1, COL["term_coverage_title"]] == 0.0
    assert f[0, COL["exact_phrase_title"]] == 1.0
    assert f[0, COL["fuzzy_title"]] > f[1, COL["fuzzy_title"]]
    assert f[0, COL["cosine"]] > f[1, COL["cosine"]]


def test_engagement_is_smoothed_so_two_impressions_do_not_look_like_a_hit() -> None:
    day = dt.date(2026, 11, 1)
    rows = [
        {"date": day, "query": "q", "locale": "en", "item_id": "big",
         "impressions": 1000, "clicks": 50, "saves": 0, "closeups": 0},
        {"date": day, "query": "q", "locale": "en", "item_id": "tiny",
         "impressions": 2, "clicks": 2, "saves": 0, "closeups": 0},
    ]  # fmt: skip
    rates = engagement_rates(pa.Table.from_pylist(rows), prior_impressions=20)
    assert rates["tiny"]["click_rate"] < 0.2  # raw rate would be 1.0
    assert rates["big"]["click_rate"] == pytest.approx(0.05, abs=0.005)


def test_the_batch_path_equals_the_per_query_serving_path(featurizer: PairFeaturizer) -> None:
    rows, _ = featurizer.store.rows_of(["vase", "cake", "rug"])
    queries = ["ceramic vase", "ceramic vase", "chocolate cake"]
    q, i, s = featurizer.featurize_many(queries, rows)
    single = featurizer.featurize("ceramic vase", rows[:2])
    np.testing.assert_allclose(s[:2], single.scalars, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q[0], single.query_embedding, rtol=1e-5, atol=1e-6)
    x = assemble_inputs(q, i, s)
    assert x.shape == (3, 3 * featurizer.store.dim + len(SCALAR_FEATURES))


def test_unknown_items_are_reported_not_guessed(featurizer: PairFeaturizer) -> None:
    rows, missing = featurizer.store.rows_of(["vase", "nope"])
    assert list(rows) == [featurizer.store.index["vase"]]
    assert missing == ["nope"]


def test_query_embeddings_are_cached(featurizer: PairFeaturizer) -> None:
    emb = featurizer.embedder
    before = emb.cache_hits
    rows, _ = featurizer.store.rows_of(["vase"])
    featurizer.featurize("a query seen twice", rows)
    featurizer.featurize("a query seen twice", rows)
    assert emb.cache_hits == before + 1


def test_a_cleared_cache_computes_the_query_again(featurizer: PairFeaturizer) -> None:
    emb = featurizer.embedder
    first = emb.encode_query("a query the cache forgets")
    emb.clear_cache()
    misses = emb.cache_misses
    again = emb.encode_query("a query the cache forgets")
    assert emb.cache_misses == misses + 1
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_the_store_survives_a_round_trip(featurizer: PairFeaturizer, tmp_path: Path) -> None:
    store = ItemStore(featurizer.store.directory)
    assert store.ids == featurizer.store.ids
    np.testing.assert_array_equal(store.embeddings, featurizer.store.embeddings)


def test_a_rebuilt_store_embeds_only_new_or_changed_items(tmp_path: Path) -> None:
    cfg = FeatureConfig()
    embedder = Embedder.from_config(cfg)
    before = [_item("vase", "Blue ceramic vase"), _item("cake", "Chocolate layer cake"),
              _item("rug", "Wool rug")]  # fmt: skip
    first = build_item_store(pa.Table.from_pylist(before), None, embedder, cfg, tmp_path / "a")
    assert (first["embedded"], first["reused"]) == (3, 0)
    after = [before[0], _item("cake", "Lemon drizzle cake"), before[2], _item("lamp", "Lamp")]
    second = build_item_store(pa.Table.from_pylist(after), None, embedder, cfg, tmp_path / "b",
                              previous=tmp_path / "a")  # fmt: skip
    assert (second["embedded"], second["reused"]) == (2, 2)  # the changed cake and the new lamp
    a, b = ItemStore(tmp_path / "a"), ItemStore(tmp_path / "b")
    np.testing.assert_array_equal(b.embeddings[b.index["vase"]], a.embeddings[a.index["vase"]])
    assert not np.allclose(b.embeddings[b.index["cake"]], a.embeddings[a.index["cake"]])
    fresh = embedder.encode(["Lemon drizzle cake"])[0]
    np.testing.assert_allclose(b.embeddings[b.index["cake"]], fresh, atol=1e-5)


def test_the_multilingual_encoder_places_translations_together() -> None:
    from searchrel.features.embedder import USE_MULTILINGUAL

    use = Embedder(USE_MULTILINGUAL)
    v = use.encode(["red summer dress", "rotes Sommerkleid", "robe rouge d'été",
                    "chocolate layer cake"])  # fmt: skip
    assert v.shape == (4, 512) and use.dim == 512
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[3] and v[0] @ v[2] > v[0] @ v[3]
    assert np.array_equal(
        use.encode_query("rotes Sommerkleid"), use.encode_query("rotes Sommerkleid")
    )


def test_engagement_is_counted_without_the_test_queries_impressions() -> None:
    """The held-out queries' clicks follow their labels: counted into the items' rates they
    would hand the evaluation (and the deploy gate) its own answers."""
    data = DataConfig(test_fraction=0.3, val_fraction=0.1)
    queries = [f"query {n}" for n in range(40)]
    log = pa.Table.from_pylist(
        [{"date": dt.date(2026, 11, 1), "query": q, "locale": "en-US", "item_id": "i1",
          "impressions": 10, "clicks": 9, "saves": 0, "closeups": 1} for q in queries],
        schema=IMPRESSIONS,
    )  # fmt: skip
    kept, left_out = without_test_queries(log, data)
    test = [q for q in queries if split_of(q, data) == "test"]
    assert 0 < len(test) < len(queries) and left_out == len(test)
    assert set(kept.column("query").to_pylist()) == set(queries) - set(test)
