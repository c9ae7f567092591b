"""The bundled sample: deterministic, within the contract, shaped like Pinterest data."""

from __future__ import annotations

import itertools
import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from searchrel.captions.fetch import resolve_image_uri
from searchrel.data.sample import (
    SAMPLE_LEVELS,
    Spec,
    build_sample,
    load_catalog,
    rate,
    relevance,
)
from searchrel.tables import read_table

TABLES = ("items", "judgments", "impressions")
NON_ENGLISH = {"de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample")
    return out, build_sample(out, seed=7)


@pytest.fixture(scope="module")
def frames(sample: tuple[Path, dict]) -> dict[str, pd.DataFrame]:
    out, _ = sample
    return {name: pq.read_table(out / f"{name}.parquet").to_pandas() for name in TABLES}


def test_same_seed_gives_identical_tables(sample: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = sample
    again = build_sample(tmp_path / "again", seed=7)
    assert again == summary
    for name in TABLES:
        assert pq.read_table(tmp_path / "again" / f"{name}.parquet").equals(
            pq.read_table(out / f"{name}.parquet")
        ), name


def test_another_seed_gives_another_sample(sample: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = sample
    build_sample(tmp_path / "other", seed=8)
    for name in ("judgments", "impressions"):
        assert not pq.read_table(tmp_path / "other" / f"{name}.parquet").equals(
            pq.read_table(out / f"{name}.parquet")
        ), name


def test_tables_pass_the_contract(sample: tuple[Path, dict]) -> None:
    out, summary = sample
    for name in TABLES:
        result = read_table(out / f"{name}.parquet", name, SAMPLE_LEVELS)
        assert result.quarantine.num_rows == 0, (name, result.reasons)
        assert result.rows_out == summary["tables"][name]
        assert not (out / f"{name}.quarantine.parquet").exists()


def test_all_five_levels_appear_with_reasonable_counts(frames: dict[str, pd.DataFrame]) -> None:
    counts = frames["judgments"]["label"].value_counts()
    assert sorted(counts.index) == [1, 2, 3, 4, 5]
    assert counts.min() >= 15, counts.to_dict()
    assert counts.max() <= 0.45 * counts.sum(), counts.to_dict()
    weights = frames["judgments"]["weight"]
    assert ((weights > 0) & (weights <= 1)).all()
    assert weights.nunique() > 1  # raters disagree sometimes


def test_locales_include_non_english(frames: dict[str, pd.DataFrame]) -> None:
    items = frames["items"]
    locales = set(items["locale"])
    assert len(locales) >= 5
    assert locales >= NON_ENGLISH
    share = items["locale"].isin(NON_ENGLISH).mean()
    assert 0.2 <= share <= 0.45, share
    # Non-English Pins are written in their language, non-English queries are judged.
    ja = items[items["locale"] == "ja-JP"]["title"]
    assert all(
        any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in t) for t in ja
    )
    judged_locales = set(frames["judgments"]["locale"])
    assert judged_locales >= NON_ENGLISH


def test_judged_pairs_in_the_few_hundred_range(frames: dict[str, pd.DataFrame]) -> None:
    judgments = frames["judgments"]
    assert 300 <= len(judgments) <= 600
    per_query = judgments.groupby(["locale", "query"]).size()
    assert 40 <= len(per_query) <= 60
    assert per_query.min() >= 5 and per_query.max() <= 10
    items = frames["items"].set_index("item_id")
    assert 120 <= len(items) <= 170
    assert judgments["item_id"].isin(items.index).all()
    # A query judges Pins of its own locale.
    assert (items.loc[judgments["item_id"], "locale"].to_numpy() == judgments["locale"]).all()


def test_every_text_field_is_filled(frames: dict[str, pd.DataFrame]) -> None:
    items = frames["items"]
    for name in ("title", "description", "caption"):
        assert items[name].str.len().gt(0).all(), name
    assert items["board_titles"].map(len).ge(1).all()
    assert items["engaged_queries"].map(len).ge(1).all()
    linked = items["link_title"].notna()
    assert linked.mean() > 0.6
    assert (items["link_description"].notna() == linked).all()


def test_skimage_image_uris_resolve_to_existing_files(frames: dict[str, pd.DataFrame]) -> None:
    items = frames["items"]
    with_images = items[items["image_uri"].notna()]
    assert len(with_images) >= 8
    assert with_images["image_uri"].str.startswith("skimage://").all()
    for uri in with_images["image_uri"]:
        path = resolve_image_uri(uri)
        assert path.is_file(), (uri, path)
    coffee = with_images[with_images["image_uri"] == "skimage://coffee.png"]
    assert coffee["caption"].str.contains("coffee").all()
    cat = with_images[with_images["image_uri"] == "skimage://chelsea.png"]
    assert cat["caption"].str.contains("cat").all()


def test_impressions_span_four_days_and_include_unjudged_queries(
    frames: dict[str, pd.DataFrame],
) -> None:
    imp = frames["impressions"]
    dates = sorted(pd.to_datetime(imp["date"]).unique())
    assert len(dates) == 4
    assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))
    assert 1500 <= len(imp) <= 3000
    logged = set(zip(imp["locale"], imp["query"], strict=True))
    judged = set(zip(frames["judgments"]["locale"], frames["judgments"]["query"], strict=True))
    assert len(logged - judged) >= 10
    assert imp["item_id"].isin(frames["items"]["item_id"]).all()
    for column in ("clicks", "saves", "closeups"):
        assert (imp[column] <= imp["impressions"]).all()
    assert (imp["impressions"] >= 1).all()


def test_every_days_log_holds_pairs_no_human_judged_also_for_judged_queries(
    frames: dict[str, pd.DataFrame],
) -> None:
    """What the teacher labels and the student distils from (make demo, the daily run) is not
    only the judged pairs again: every day logs pairs no human judged, on judged queries too."""
    judgments = frames["judgments"]
    judged = set(zip(judgments["locale"], judgments["query"], judgments["item_id"], strict=True))
    judged_queries = {(loc, q) for loc, q, _ in judged}
    for _, day in frames["impressions"].groupby("date"):
        pairs = set(zip(day["locale"], day["query"], day["item_id"], strict=True))
        never = pairs - judged
        assert len(never) >= len(pairs) // 4
        assert sum((loc, q) in judged_queries for loc, q, _ in never) >= 20


def test_christmas_grows_and_halloween_fades(frames: dict[str, pd.DataFrame]) -> None:
    imp = frames["impressions"].copy()
    imp["day"] = pd.to_datetime(imp["date"]).rank(method="dense").astype(int)

    def rows(word: str, day: int) -> int:
        return int((imp["query"].str.contains(word) & (imp["day"] == day)).sum())

    assert rows("christmas", 1) < rows("christmas", 4)
    assert rows("halloween", 1) > rows("halloween", 4)


def test_engagement_follows_relevance(frames: dict[str, pd.DataFrame]) -> None:
    merged = frames["impressions"].merge(frames["judgments"], on=["query", "locale", "item_id"])
    by_label = merged.groupby("label")[["impressions", "clicks", "saves"]].sum()
    ctr = by_label["clicks"] / by_label["impressions"]
    assert ctr[5] > ctr[3] > ctr[1]
    save_rate = by_label["saves"] / by_label["impressions"]
    assert save_rate[5] > save_rate[1]


def test_relevance_rule() -> None:
    query = Spec("home_decor", "rug", (("color", "blue"), ("style", "boho")))
    assert relevance(query, Spec("home_decor", "rug", (("color", "blue"), ("style", "boho")))) == 5
    assert (
        relevance(query, Spec("home_decor", "rug", (("color", "blue"), ("style", "modern")))) == 4
    )
    assert relevance(query, Spec("home_decor", "rug", (("color", "red"), ("style", "modern")))) == 3
    assert relevance(query, Spec("home_decor", "pendant_lamp", query.attrs)) == 2
    assert relevance(query, Spec("recipes", "soup", ())) == 1
    assert relevance(Spec("home_decor", "rug"), Spec("home_decor", "rug", query.attrs)) == 5


def test_rater_simulation_stays_near_the_rule() -> None:
    import random

    rng = random.Random(0)
    results = [rate(label, rng) for label in [1, 2, 3, 4, 5] * 200]
    labels = [label for label, _ in results]
    assert all(1 <= x <= 5 for x in labels)
    agree = sum(x == y for x, y in zip(labels, [1, 2, 3, 4, 5] * 200, strict=True))
    assert 0.85 <= agree / len(labels) < 1.0  # some noise, mostly the rule
    assert all(0 < w <= 1 for _, w in results)


def test_summary_matches_the_tables(
    sample: tuple[Path, dict], frames: dict[str, pd.DataFrame]
) -> None:
    out, summary = sample
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
    assert summary["levels"] == SAMPLE_LEVELS
    for name in TABLES:
        assert summary["tables"][name] == len(frames[name])
    assert summary["label_counts"] == {
        str(k): int((frames["judgments"]["label"] == k).sum()) for k in range(1, 6)
    }
    assert sum(v["items"] for v in summary["locales"].values()) == len(frames["items"])
    assert summary["dates"] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]


def test_catalog_ships_with_the_package() -> None:
    assert resources.files("searchrel.data").joinpath("sample_catalog.yaml").is_file()
    catalog = load_catalog()
    assert catalog["levels"] == SAMPLE_LEVELS
    assert catalog["locales"]["en-GB"]["subjects"]["sweater"]["name"] == "jumper"
    # en-GB inherits the rest of en-US's words
    assert catalog["locales"]["en-GB"]["subjects"]["rug"]["name"] == "area rug"
