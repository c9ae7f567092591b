"""The sampled request log: sampling, round trip through the contract, crashes, rotation."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from searchrel.request_log import RequestLogger, read_request_log
from searchrel.schema import REQUEST_LOG, SCALAR_FEATURES
from searchrel.tables import ContractError

LEVELS = 5
DIM = 8


def request_rows(request_id: str, n_items: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """The rows the server logs for one request (one per scored item)."""
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=DIM).astype(np.float32).tolist()  # shared by the request's rows
    rows = []
    for j in range(n_items):
        probs = rng.dirichlet(np.ones(LEVELS)).astype(np.float64)
        probs = (probs / probs.sum()).tolist()
        rows.append(
            {
                "ts": datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC),
                "request_id": request_id,
                "query": f"query {request_id}",
                "locale": "en-US" if j % 2 == 0 else "de-DE",
                "item_id": f"item-{j}",
                "query_embedding": embedding,
                **{name: float(rng.normal()) for name in SCALAR_FEATURES},
                "probs": probs,
                "expected_score": float(np.dot(np.arange(1, LEVELS + 1), probs)),
                "model_version": "student-v1",
            }
        )
    return rows


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("requests-*.jsonl"))


def test_sample_rate_one_logs_every_request_and_zero_none(tmp_path: Path) -> None:
    everything = RequestLogger(tmp_path / "all", sample_rate=1.0)
    nothing = RequestLogger(tmp_path / "none", sample_rate=0.0)
    for i in range(20):
        assert everything.log(request_rows(f"r{i}"))
        assert not nothing.log(request_rows(f"r{i}"))
    everything.close()
    nothing.close()
    assert everything.requests_logged == 20 and everything.rows_logged == 60
    assert everything.requests_skipped == 0 and everything.rows_skipped == 0
    assert nothing.requests_skipped == 20 and nothing.rows_skipped == 60
    assert nothing.rows_logged == 0
    assert not (tmp_path / "none").exists() or not log_files(tmp_path / "none")
    assert read_request_log(tmp_path / "all", LEVELS).rows_out == 60


def test_half_sampling_is_seeded_and_keeps_requests_whole(tmp_path: Path) -> None:
    def run(directory: Path, seed: int) -> list[bool]:
        logger = RequestLogger(directory, sample_rate=0.5, seed=seed)
        decisions = [logger.log(request_rows(f"r{i}", n_items=4)) for i in range(400)]
        logger.close()
        return decisions

    first = run(tmp_path / "a", seed=7)
    again = run(tmp_path / "b", seed=7)
    other = run(tmp_path / "c", seed=8)
    assert first == again  # seeded: the same requests are sampled
    assert first != other
    assert 150 <= sum(first) <= 250  # ~0.5 (binomial sd 10)

    table = read_request_log(tmp_path / "a", LEVELS).table
    per_request = table.group_by("request_id").aggregate([("item_id", "count")])
    assert set(per_request.column("item_id_count").to_pylist()) == {4}  # all rows or none
    logged = {f"r{i}" for i, kept in enumerate(first) if kept}
    assert set(per_request.column("request_id").to_pylist()) == logged


def test_rows_round_trip_through_the_contract(tmp_path: Path) -> None:
    rows = request_rows("req-1", n_items=5, seed=3)
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        assert logger.log(rows)
        path = logger.path
    assert path is not None
    assert path.name.startswith("requests-") and path.name.endswith("-0.jsonl")
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert path.name.split("-")[1] == day

    first_line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first_line["ts"] == "2024-05-01T12:30:15.250Z"  # ISO-8601 UTC, milliseconds

    result = read_request_log(tmp_path, LEVELS)
    assert result.quarantine.num_rows == 0
    assert result.rows_in == result.rows_out == 5
    table = result.table
    assert table.schema.equals(REQUEST_LOG)
    assert table.column("ts")[0].as_py() == datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    back = table.to_pylist()
    for sent, got in zip(rows, back, strict=True):
        for key in ("request_id", "query", "locale", "item_id", "model_version"):
            assert got[key] == sent[key]
        for key in (*SCALAR_FEATURES, "expected_score"):
            assert got[key] == pytest.approx(sent[key], rel=1e-6)  # float32 column
        assert got["query_embedding"] == pytest.approx(sent["query_embedding"], rel=1e-6)
        assert got["probs"] == pytest.approx(sent["probs"], rel=1e-6)


def test_numpy_values_missing_ts_and_non_finite_values(tmp_path: Path) -> None:
    rows = request_rows("np", n_items=2)
    rows[0]["query_embedding"] = np.asarray(rows[0]["query_embedding"], dtype=np.float32)
    rows[0]["cosine"] = np.float32(0.5)
    del rows[0]["ts"]  # the logger stamps it
    rows[1]["cosine"] = float("nan")  # strict JSON on disk; quarantined when read
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        logger.log(rows)
        path = logger.path
    assert path is not None
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_out == 1
    assert result.reasons == {"bad_type:cosine": 1}
    stamped = result.table.column("ts")[0].as_py()
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60
    assert result.table.column("cosine")[0].as_py() == pytest.approx(0.5)


def test_epoch_seconds_are_written_as_iso_utc(tmp_path: Path) -> None:
    rows = request_rows("epoch", n_items=2)
    now = time.time()  # what the server passes
    rows[0]["ts"], rows[1]["ts"] = now, np.float64(1_714_566_615.25)
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        logger.log(rows)
        path = logger.path
    assert path is not None
    first, second = (json.loads(line)["ts"] for line in path.read_text().splitlines())
    assert first.endswith("Z") and first.startswith(datetime.now(UTC).strftime("%Y-"))
    assert second == "2024-05-01T12:30:15.250Z"
    table = read_request_log(tmp_path, LEVELS).table
    stamped = table.column("ts").to_pylist()
    assert abs(stamped[0].timestamp() - now) < 0.001
    assert stamped[1] == datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)


def test_truncated_last_line_is_quarantined_not_fatal(tmp_path: Path) -> None:
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        logger.log(request_rows("ok", n_items=3))
        path = logger.path
    assert path is not None
    whole = json.dumps(request_rows("cut", n_items=1)[0], default=str)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(whole[: len(whole) // 2])  # the server died mid-write

    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_out == 3
    assert result.rows_in == 4
    assert result.reasons == {"truncated_line": 1}
    entry = result.quarantine.to_pylist()[0]
    assert entry["reason"] == "truncated_line" and entry["row_index"] == 3
    where = json.loads(entry["row_json"])
    assert where["file"] == path.name and where["line"] == 4

    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n")  # now a whole line, just not JSON
    assert read_request_log(tmp_path, LEVELS).reasons == {"bad_json": 1}


def test_bad_lines_and_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    good = request_rows("g", n_items=2)
    bad_probs = dict(good[0], probs=[0.5, 0.5, 0.5, 0.5, 0.5])
    extra = dict(good[0], surprise=1)
    empty_ts = dict(good[0], ts="")
    numeric_ts = dict(good[0], ts=1714566615)
    missing = {k: v for k, v in good[0].items() if k != "locale"}
    lines = [json.dumps(r, default=str) for r in (good[0], bad_probs, extra, empty_ts, numeric_ts)]
    lines += ["not json at all", json.dumps(missing, default=str), json.dumps(good[1], default=str)]
    (tmp_path / "requests-20240501-1-0.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")

    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_in == 8
    assert result.rows_out == 2
    assert result.reasons == {
        "bad_probabilities": 1,
        "unexpected_field:surprise": 1,
        "bad_type:ts": 2,
        "bad_json": 1,
        "missing:locale": 1,
    }
    assert result.quarantine.column("row_index").to_pylist() == [1, 2, 3, 4, 5, 6]


def test_parquet_files_are_read_too_but_not_quarantine_files(tmp_path: Path) -> None:
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        logger.log(request_rows("json", n_items=2))
    from_json = read_request_log(tmp_path, LEVELS).table
    parquet_rows = from_json.to_pylist()
    for row in parquet_rows:
        row["request_id"] = "parquet"
    pq.write_table(pa.Table.from_pylist(parquet_rows, schema=REQUEST_LOG), tmp_path / "x.parquet")
    pq.write_table(pa.table({"junk": [1]}), tmp_path / "x.quarantine.parquet")

    table = read_request_log(tmp_path, LEVELS).table
    assert sorted(table.column("request_id").to_pylist()) == ["json", "json", "parquet", "parquet"]

    pq.write_table(pa.table({"junk": [1]}), tmp_path / "y.parquet")
    with pytest.raises(ContractError, match="missing column"):
        read_request_log(tmp_path, LEVELS)


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_in == 0 and result.rows_out == 0
    assert result.table.schema.equals(REQUEST_LOG)
    with pytest.raises(ContractError):
        read_request_log(tmp_path / "nope", LEVELS)


def test_rotation_after_max_rows_keeps_requests_in_one_file(tmp_path: Path) -> None:
    with RequestLogger(tmp_path, sample_rate=1.0, max_rows_per_file=10) as logger:
        for i in range(10):
            logger.log(request_rows(f"r{i}", n_items=3))  # 30 rows
        assert logger.files_opened == 3
    files = log_files(tmp_path)
    assert [p.name.rsplit("-", 1)[1] for p in files] == ["0.jsonl", "1.jsonl", "2.jsonl"]
    counts = [len(p.read_text(encoding="utf-8").splitlines()) for p in files]
    assert counts == [12, 12, 6]  # a file closes at the first request that reaches 10 rows
    for path in files:
        ids = [json.loads(line)["request_id"] for line in path.read_text().splitlines()]
        for request_id in set(ids):
            assert ids.count(request_id) == 3
    assert read_request_log(tmp_path, LEVELS).rows_out == 30


def test_rotation_after_max_file_bytes_and_retention_bound_the_directory(tmp_path: Path) -> None:
    """Files close at a size, and the oldest are deleted once all of them pass the total."""
    with RequestLogger(tmp_path, 1.0, max_file_bytes=2_000, max_total_bytes=6_000) as logger:
        for i in range(60):
            logger.log(request_rows(f"r{i}", n_items=3))
    sizes = [p.stat().st_size for p in log_files(tmp_path)]
    assert logger.files_opened > 5 and logger.files_deleted > 0
    assert all(size < 2_000 + 1_500 for size in sizes)  # closes at the request that passes it
    assert sum(sizes) <= 6_000 + 2_000 + 1_500  # the bound, plus the file being written


def test_retention_deletes_files_older_than_the_age_limit(tmp_path: Path) -> None:
    old = tmp_path / "requests-20200101-1-0.jsonl"
    old.write_text("", encoding="utf-8")
    os.utime(old, (1_577_836_800, 1_577_836_800))  # 2020-01-01
    other = tmp_path / "notes.txt"  # not a log file: never touched
    other.write_text("keep", encoding="utf-8")
    with RequestLogger(tmp_path, 1.0, max_age_s=3600) as logger:
        logger.log(request_rows("new"))
    assert not old.exists() and other.exists() and len(log_files(tmp_path)) == 1


def test_a_second_logger_never_appends_to_anothers_file(tmp_path: Path) -> None:
    with RequestLogger(tmp_path, 1.0) as one, RequestLogger(tmp_path, 1.0) as two:
        one.log(request_rows("a"))
        two.log(request_rows("b"))
        assert one.path != two.path
    assert read_request_log(tmp_path, LEVELS).rows_out == 6


def test_concurrent_logging_loses_no_rows(tmp_path: Path) -> None:
    logger = RequestLogger(tmp_path, sample_rate=1.0, max_rows_per_file=50)
    n_threads, per_thread = 8, 40
    template = request_rows("t", n_items=3)
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            logger.log([dict(row, request_id=f"t{t}-{i}") for row in template])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.close()

    assert logger.rows_logged == n_threads * per_thread * 3
    result = read_request_log(tmp_path, LEVELS)
    assert result.quarantine.num_rows == 0  # no interleaved half lines
    ids = result.table.column("request_id").to_pylist()
    assert len(ids) == n_threads * per_thread * 3
    assert len(set(ids)) == n_threads * per_thread
    assert len(log_files(tmp_path)) > 1  # rotated while threads wrote


def test_a_row_that_cannot_be_encoded_is_counted_not_raised(tmp_path: Path) -> None:
    rows = request_rows("x", n_items=2)
    rows[1][("not", "a", "string")] = 1  # type: ignore[index]
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        assert logger.log(rows) is False
        assert logger.rows_failed == 2 and logger.rows_logged == 0
        assert logger.log(request_rows("y")) is True
    assert logger.stats()["rows_logged"] == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RequestLogger(Path("x"), sample_rate=1.5)
    with pytest.raises(ValueError):
        RequestLogger(Path("x"), sample_rate=0.5, max_rows_per_file=0)
