"""`searchrel data import`: a user's own CSV / JSONL / Parquet files with their own column
names become the contract tables; every record is imported or quarantined with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchrel.config import load_config
from searchrel.data.importer import Mapping, import_data
from searchrel.data.ingest import ingest
from searchrel.tables import ContractError, read_table

LEVELS = 5

ITEMS_CSV = """pin_id,locale,name,description,boards,views
p1,en-US,Blue wool rug,"A hand-woven rug, 2x3 m",Rugs|Living room,10
p2,en-US,Oak side table,,Tables,3
p3,en-US,,no title here,,1
"""

JUDGMENTS_JSONL = """{"search_term": "blue rug", "locale": "en-US", "pin_id": "p1", "rating": 5}
{"search_term": "blue rug", "locale": "en-US", "pin_id": "p2", "rating": "2"}
{"search_term": "blue rug", "locale": "en-US", "pin_id": "p3", "rating": 9}
this line is not JSON
{"search_term": "side table", "locale": "en-US", "pin_id": "p2", "rating": 4, "weight": 0.5}
"""


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "pins.csv").write_text(ITEMS_CSV, encoding="utf-8")
    (tmp_path / "ratings.jsonl").write_text(JUDGMENTS_JSONL, encoding="utf-8")
    impressions = pa.table({
        "date": ["2024-05-01", "2024-05-01"], "search_term": ["blue rug", "side table"],
        "locale": ["en-US", "en-US"], "pin_id": ["p1", "p2"], "impressions": [10, 4],
        "clicks": [2, 0], "saves": [1, 0], "closeups": [3, 1],
    })  # fmt: skip
    pq.write_table(impressions, tmp_path / "log.parquet")
    return {
        "items": tmp_path / "pins.csv",
        "judgments": tmp_path / "ratings.jsonl",
        "impressions": tmp_path / "log.parquet",
    }


MAPS = ["query=search_term", "item_id=pin_id", "items.title=name", "judgments.label=rating",
        "items.board_titles=boards"]  # fmt: skip


def test_three_formats_with_the_users_column_names_become_the_contract_tables(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "imported"
    summary = import_data(sources, out, MAPS, LEVELS, list_sep="|")
    items = read_table(out / "items.parquet", "items").table.to_pylist()
    assert [i["item_id"] for i in items] == ["p1", "p2"]
    assert items[0]["board_titles"] == ["Rugs", "Living room"]
    assert items[0]["description"] == "A hand-woven rug, 2x3 m" and items[1]["description"] is None
    assert summary["items"]["absent_columns_read_as_null"] == [
        "image_uri", "caption", "engaged_queries", "link_title", "link_description"
    ]  # fmt: skip
    assert summary["items"]["ignored_columns"] == ["views"]
    assert summary["items"]["reasons"] == {"missing:title": 1}
    judgments = read_table(out / "judgments.parquet", "judgments", LEVELS).table.to_pylist()
    assert [(j["query"], j["item_id"], j["label"]) for j in judgments] == [
        ("blue rug", "p1", 5), ("blue rug", "p2", 2), ("side table", "p2", 4)
    ]  # fmt: skip
    assert judgments[2]["weight"] == 0.5 and judgments[0]["weight"] is None
    assert summary["judgments"]["reasons"] == {"bad_json": 1, "label_out_of_range": 1}
    quarantined = pq.read_table(out / "judgments.quarantine.parquet").to_pylist()
    assert [(q["row_index"], q["reason"]) for q in quarantined] == [
        (2, "label_out_of_range"), (3, "bad_json")
    ]  # record numbers in the file  # fmt: skip
    assert read_table(out / "impressions.parquet", "impressions").rows_out == 2
    for kind in ("items", "judgments", "impressions"):
        s = summary[kind]
        assert s["records"] == s["rows_out"] + s["quarantined"]
    assert json.loads((out / "import_summary.json").read_text()) == summary


def test_the_output_directory_is_a_source_the_pipeline_ingests(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "imported"
    import_data(sources, out, MAPS, LEVELS, list_sep="|")
    written = {k: tmp_path / "ingested" / f"{k}.parquet" for k in sources}
    summary = ingest(str(out), written, load_config(overrides={"data": {"levels": LEVELS}}))
    assert summary["items"]["rows_out"] == 2 and summary["judgments"]["rows_out"] == 3


def test_a_list_cell_may_be_a_json_array_and_anything_else_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('item_id,locale,title,board_titles\na,en,A,"[""x"", ""y""]"\nb,en,B,x|y\n')
    summary = import_data({"items": path}, tmp_path / "out", [], LEVELS)
    (row,) = read_table(tmp_path / "out" / "items.parquet", "items").table.to_pylist()
    assert row["board_titles"] == ["x", "y"]
    assert summary["items"]["reasons"] == {"bad_type:board_titles": 1}


def test_a_csv_record_with_more_fields_than_the_header_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,locale,title\na,en,A\nb,en,B,extra\n")
    summary = import_data({"items": path}, tmp_path / "out", [], LEVELS)
    assert summary["items"]["rows_out"] == 1 and summary["items"]["reasons"] == {
        "csv_extra_fields": 1
    }


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (["query"], "CONTRACT=SOURCE"),
        (["colour=color"], "'colour' is not a column"),
        (["rugs.title=name"], "no table 'rugs'"),
        (["judgments.title=name"], "'title' is not a column of judgments"),
    ],
)
def test_a_bad_mapping_is_one_clear_error(maps: list[str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        Mapping.parse(maps)


def test_a_mapped_column_the_file_lacks_is_named(sources: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"no column.*search_phrase"):
        import_data({"judgments": sources["judgments"]}, tmp_path / "o",
                    ["query=search_phrase"], LEVELS)  # fmt: skip


def test_the_cli_imports_and_a_mistake_is_one_line(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    cmd = [sys.executable, "-m", "searchrel", "data", "import", "--out", str(tmp_path / "o"),
           "--items", str(sources["items"]), "--list-sep", "|",
           *(a for m in MAPS for a in ("--map", m))]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"]["rows_out"] == 2
    wrong = subprocess.run([*cmd, "--map", "colour=color"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "colour" in wrong.stderr and "Traceback" not in wrong.stderr
    unknown = tmp_path / "items.xlsx"
    unknown.write_text("x")
    fmt = subprocess.run([*cmd[:7], "--items", str(unknown)], capture_output=True, text=True)
    assert fmt.returncode == 2 and "unknown format" in fmt.stderr


CELL = st.one_of(st.text(max_size=12), st.sampled_from(["", "1", "-3", "9", "[1]", '["a"]']))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(CELL, min_size=1, max_size=7), max_size=6))
def test_any_csv_is_imported_or_quarantined_record_by_record(
    rows: list[list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["query", "locale", "item_id", "label", "weight"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("fuzz") / "judgments.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8", errors="surrogatepass"))
    try:
        summary = import_data({"judgments": path}, path.parent / "out", [], LEVELS)
    except ContractError:
        return  # e.g. a file the csv module reads as something other than its records
    s = summary["judgments"]
    assert s["records"] == s["rows_out"] + s["quarantined"]
    assert (
        read_table(path.parent / "out" / "judgments.parquet", "judgments", LEVELS).rows_out
        == (s["rows_out"])
    )
