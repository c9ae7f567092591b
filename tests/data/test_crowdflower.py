"""The CrowdFlower importer: every row read arrives as a judgment or is quarantined with a
reason, its file and its line; text is cleaned; weights come from rater agreement."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from searchrel.config import shared_dir
from searchrel.data.crowdflower import (
    CROWDFLOWER_LEVELS,
    find_crowdflower_csvs,
    import_crowdflower,
    relevance_weight,
)
from searchrel.tables import ContractError, read_table

CROWDFLOWER_ROWS = 10_158
CROWDFLOWER_QUERIES = 261
TAG = re.compile(r"</?[a-zA-Z][^<>]*>")


def _quarantine(out: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(out / "quarantine.parquet").to_pylist()
    for row in rows:
        row["detail"] = json.loads(row["row_json"])
    return rows


# --------------------------------------------------------------------------------------------
# The real folds in ../shared (skipped where they are absent)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folds() -> list[Path]:
    found = find_crowdflower_csvs(shared_dir())
    if not found:
        pytest.skip(
            f"CrowdFlower folds not found under {shared_dir()} "
            "(set SEARCHREL_SHARED_DIR to the folder that holds data/crowdflower)"
        )
    return found


@pytest.fixture(scope="module")
def imported(folds: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("crowdflower")
    return out, import_crowdflower(folds, out)


def test_finds_all_ten_folds_in_fold_order(folds: list[Path]) -> None:
    assert [p.name for p in folds] == [f"fold-{i}.csv" for i in range(1, 11)]


def test_every_row_arrives_or_is_quarantined_with_a_reason(imported: tuple[Path, dict]) -> None:
    out, summary = imported
    assert summary["rows_read"] == CROWDFLOWER_ROWS
    assert summary["judgments"] + summary["quarantined"] == CROWDFLOWER_ROWS
    quarantined = _quarantine(out)
    assert len(quarantined) == summary["quarantined"]
    assert all(q["reason"] and q["detail"]["source_line"] > 1 for q in quarantined)
    assert sum(summary["reasons"].values()) == summary["quarantined"]

    judgments = read_table(out / "judgments.parquet", "judgments", CROWDFLOWER_LEVELS)
    assert judgments.quarantine.num_rows == 0
    assert judgments.rows_out == summary["judgments"]
    queries = set(judgments.table.column("query").to_pylist())
    # Queries only in quarantined rows still count: 261 arrive or are accounted for.
    lost = {
        str(q["detail"]["fields"].get("query", "")).strip()
        for q in quarantined
        if isinstance(q["detail"]["fields"], dict)
    }
    assert len(queries | lost) >= CROWDFLOWER_QUERIES
    assert summary["queries"] == len(queries)
    assert sum(summary["label_counts"].values()) == summary["judgments"]
    assert set(summary["label_counts"]) == {"1", "2", "3", "4"}


def test_all_ten_thousand_judgments_arrive(imported: tuple[Path, dict]) -> None:
    # The published folds are clean: nothing should need quarantining.
    _, summary = imported
    assert summary["judgments"] == CROWDFLOWER_ROWS
    assert summary["queries"] == CROWDFLOWER_QUERIES
    assert summary["quarantined"] == 0


def test_items_match_judgments_one_to_one(imported: tuple[Path, dict]) -> None:
    out, summary = imported
    items = read_table(out / "items.parquet", "items")
    assert items.quarantine.num_rows == 0
    item_ids = items.table.column("item_id").to_pylist()
    judged = pq.read_table(out / "judgments.parquet").column("item_id").to_pylist()
    assert sorted(item_ids) == sorted(judged)
    assert all(i.startswith("cf-") for i in item_ids)
    assert set(items.table.column("locale").to_pylist()) == {"en-US"}
    assert summary["items"] == len(item_ids)


def test_html_is_stripped(folds: list[Path], imported: tuple[Path, dict]) -> None:
    out, _ = imported
    with_html = set()
    for path in folds:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if TAG.search(row["product_description"] + row["product_title"]):
                    with_html.add(f"cf-{row['id']}")
    assert with_html, "expected some HTML in the raw descriptions"
    items = pq.read_table(out / "items.parquet").to_pylist()
    for item in items:
        for name in ("title", "description"):
            text = item[name] or ""
            assert not TAG.search(text), (item["item_id"], text[:200])
            assert "&amp;" not in text and "&nbsp;" not in text
            assert text == text.strip() and "\n" not in text
    assert with_html <= {i["item_id"] for i in items}


def test_weights_come_from_variance_and_lie_in_zero_one(
    folds: list[Path], imported: tuple[Path, dict]
) -> None:
    out, _ = imported
    judgments = {r["item_id"]: r for r in pq.read_table(out / "judgments.parquet").to_pylist()}
    assert all(0.0 < r["weight"] <= 1.0 for r in judgments.values())
    with folds[0].open(encoding="utf-8", newline="") as fh:
        for row in list(csv.DictReader(fh))[:50]:
            got = judgments[f"cf-{row['id']}"]
            assert got["weight"] == pytest.approx(
                relevance_weight(float(row["relevance_variance"])), rel=1e-6
            )
            assert got["label"] == int(row["median_relevance"])


def test_summary_json_is_written(imported: tuple[Path, dict]) -> None:
    out, summary = imported
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
    assert len(summary["files"]) == 10
    assert sum(f["rows_read"] for f in summary["files"]) == summary["rows_read"]


# --------------------------------------------------------------------------------------------
# A small hand-written CSV with bad rows
# --------------------------------------------------------------------------------------------

HEADER = (
    '"id","query","product_title","product_description","median_relevance","relevance_variance"'
)
SMALL_CSV = "\n".join(
    [
        HEADER,  # line 1
        '1,"red rug","Red <b>Wool</b> Rug","<p>Soft &amp; warm</p>\nline two",4,0',  # 2-3
        '2,"red rug","Blue Lamp","a lamp",7,0.5',  # 4: label out of 1..4
        '3,"red rug","Red Rug","",high,0.5',  # 5: non-numeric label
        '4,"","Red Rug","",3,0.5',  # 6: empty query
        '5,"red rug","<br>","",2,0.5',  # 7: empty title after cleaning
        '6,"red rug","Too few fields"',  # 8: malformed row
        '1,"red rug","Another product, same id","",3,0',  # 9: duplicate id
        '8,"red rug","Caf\u00c3\u00a9 Rug","",2,1.0',  # 10: mojibake, weight 0.5
        '9,"red rug","Rug","",3,-1',  # 11: negative variance
        "",  # a blank line is not a row
        '10,"lamp","Brass lamp","",1,',  # 13: no variance: null weight
    ]
)


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, dict]:
    src = tmp_path / "small.csv"
    src.write_text(SMALL_CSV + "\n", encoding="utf-8")
    out = tmp_path / "out"
    return src, out, import_crowdflower([src], out)


def test_bad_rows_land_in_quarantine_with_reasons(small: tuple[Path, Path, dict]) -> None:
    src, out, _ = small
    quarantined = _quarantine(out)
    by_line = {q["detail"]["source_line"]: q["reason"] for q in quarantined}
    assert by_line == {
        4: "label_out_of_range",
        5: "non_numeric_label",
        6: "empty:query",
        7: "empty:title",
        8: "malformed_csv:expected 6 fields, got 3",
        9: "duplicate_key",
        11: "bad_variance",
    }
    assert all(q["detail"]["source_file"] == str(src) for q in quarantined)
    assert {q["table"] for q in quarantined} == {"crowdflower_csv", "items", "judgments"}


def test_small_counts_add_up(small: tuple[Path, Path, dict]) -> None:
    _, out, summary = small
    assert summary["rows_read"] == 10  # the two-line row is one row, the blank line none
    assert summary["judgments"] == 3
    assert summary["quarantined"] == 7
    assert summary["rows_read"] == summary["judgments"] + summary["quarantined"]
    assert summary["reasons"] == {
        "bad_variance": 1,
        "duplicate_key": 1,
        "empty:query": 1,
        "empty:title": 1,
        "label_out_of_range": 1,
        "malformed_csv:expected 6 fields, got 3": 1,
        "non_numeric_label": 1,
    }
    assert summary["label_counts"] == {"1": 1, "2": 1, "3": 0, "4": 1}
    assert summary["queries"] == 2
    assert pq.read_table(out / "items.parquet").num_rows == summary["items"] == 3


def test_small_text_is_cleaned_and_weights_derived(small: tuple[Path, Path, dict]) -> None:
    _, out, _ = small
    items = {r["item_id"]: r for r in pq.read_table(out / "items.parquet").to_pylist()}
    assert items["cf-1"]["title"] == "Red Wool Rug"
    assert items["cf-1"]["description"] == "Soft & warm line two"
    assert items["cf-8"]["title"] == "Café Rug"
    assert items["cf-10"]["description"] is None  # empty descriptions are null, not ""
    weights = {
        r["item_id"]: r["weight"] for r in pq.read_table(out / "judgments.parquet").to_pylist()
    }
    assert weights["cf-1"] == pytest.approx(1.0)
    assert weights["cf-8"] == pytest.approx(0.5)
    assert weights["cf-10"] is None


def test_undecodable_bytes_are_quarantined(tmp_path: Path) -> None:
    src = tmp_path / "bytes.csv"
    src.write_bytes(
        (HEADER + "\n").encode()
        + b'1,"rug","Good rug","",4,0\n'
        + b'2,"rug","Bad \xff\xfe rug","",4,0\n'
    )
    summary = import_crowdflower([src], tmp_path / "out")
    assert summary["judgments"] == 1
    assert summary["reasons"] == {"undecodable_text": 1}


def test_a_file_without_the_columns_fails_with_one_message(tmp_path: Path) -> None:
    src = tmp_path / "wrong.csv"
    src.write_text("id,query,title\n1,a,b\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"product_title.*median_relevance"):
        import_crowdflower([src], tmp_path / "out")
    with pytest.raises(ContractError, match="no such file"):
        import_crowdflower([tmp_path / "missing.csv"], tmp_path / "out")


def test_find_crowdflower_csvs_orders_folds_numerically(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "crowdflower"
    folder.mkdir(parents=True)
    for i in (10, 2, 1):
        (folder / f"fold-{i}.csv").write_text(HEADER + "\n", encoding="utf-8")
    assert [p.name for p in find_crowdflower_csvs(tmp_path)] == [
        "fold-1.csv",
        "fold-2.csv",
        "fold-10.csv",
    ]
    assert find_crowdflower_csvs(tmp_path / "nowhere") == []
