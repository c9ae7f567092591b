"""A scored request logged from its arrays (``log_served``): the same rows, read back the same,
as the row-by-row encoder writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchrel.request_log import (
    RequestLogger,
    ServedRequest,
    encode_rows,
    encode_served,
    read_request_log,
)
from searchrel.schema import SCALAR_FEATURES

LEVELS = 4
F = len(SCALAR_FEATURES)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # no lone surrogates


def served_request(
    item_ids: list[str], seed: int, scale: float = 1.0, query: str = "red shoes"
) -> ServedRequest:
    rng = np.random.default_rng(seed)
    n = len(item_ids)
    probs = rng.dirichlet(np.ones(LEVELS), size=n).astype(np.float32)
    return ServedRequest(
        query=query,
        locale="en-US",
        item_ids=item_ids,
        query_embedding=rng.normal(size=8).astype(np.float32),
        scalars=(rng.normal(size=(n, F)) * scale).astype(np.float32),
        probs=probs,
        expected_score=(probs @ np.arange(1, LEVELS + 1, dtype=np.float32)).astype(np.float32),
        model_version="student-v1",
    )


def as_float32(value: Any) -> Any:
    """A parsed row with every number as float32: the precision the log's columns keep."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return np.float32(value)
    if isinstance(value, list):
        return [as_float32(v) for v in value]
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    return value


@settings(max_examples=60, deadline=None)
@given(
    item_ids=st.lists(texts, min_size=1, max_size=20),
    query=texts,
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-6, 1.0, 1e4, 1e34]),  # 1e34: rounding overflows float32
)
def test_the_array_encoder_writes_the_rows_the_row_encoder_writes(
    item_ids: list[str], query: str, seed: int, scale: float
) -> None:
    served = served_request(item_ids, seed, scale, query)
    with np.errstate(over="ignore"):
        fast = [json.loads(line) for line in encode_served(served)]
        slow = [json.loads(line) for line in encode_rows(served.rows())]
    assert [as_float32(row) for row in fast] == [as_float32(row) for row in slow]


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a.astype(np.float64),
        lambda a: a.astype(a.dtype.newbyteorder(">")),
    ],
    ids=["fortran_order", "float64", "big_endian"],
)
def test_any_array_layout_is_written_as_the_same_rows(layout: Any) -> None:
    served = served_request(["a", "b", "c"], seed=4)
    other = dataclasses.replace(
        served, **{k: layout(getattr(served, k)) for k in ("scalars", "probs", "query_embedding")}
    )
    assert encode_served(other) == encode_served(
        dataclasses.replace(other, **{k: np.ascontiguousarray(getattr(other, k), "<f8")
                                      for k in ("scalars", "probs", "query_embedding")})
    )  # fmt: skip
    fast = [as_float32(json.loads(line)) for line in encode_served(other)]
    assert fast == [as_float32(json.loads(line)) for line in encode_served(served)]


def test_scalars_of_the_wrong_width_are_refused_not_misaligned() -> None:
    served = served_request(["a", "b"], seed=5)
    with pytest.raises(ValueError, match="scalars of shape"):
        encode_served(dataclasses.replace(served, scalars=served.scalars[:, :-1]))


def test_a_served_request_reads_back_as_its_rows_with_the_embedding_once(tmp_path: Path) -> None:
    served = served_request(["a", 'quote " and, comma', "ünïcode"], seed=1)
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        assert logger.log_served(served)
    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_out == 3 and result.quarantine.num_rows == 0
    rows = result.table.to_pylist()
    assert [r["item_id"] for r in rows] == served.item_ids
    assert rows[0]["query_embedding"] == pytest.approx(served.query_embedding, abs=1e-5)
    assert [r["query_embedding"] for r in rows[1:]] == [None, None]
    for j, row in enumerate(rows):
        assert row["probs"] == pytest.approx(served.probs[j], abs=1e-5)
        assert [row[name] for name in SCALAR_FEATURES] == pytest.approx(served.scalars[j], abs=1e-5)
        assert row["expected_score"] == pytest.approx(served.expected_score[j], abs=1e-5)


def test_a_nan_in_a_served_request_is_written_so_that_the_reader_quarantines_it(
    tmp_path: Path,
) -> None:
    served = served_request(["a", "b"], seed=2)
    served.probs[1, 0] = np.nan
    with RequestLogger(tmp_path, sample_rate=1.0) as logger:
        assert logger.log_served(served)
    result = read_request_log(tmp_path, LEVELS)
    assert result.rows_out == 1 and result.quarantine.num_rows == 1


def test_an_unsampled_served_request_writes_nothing(tmp_path: Path) -> None:
    logger = RequestLogger(tmp_path, sample_rate=0.0)
    assert not logger.log_served(served_request(["a"], seed=3))
    assert logger.stats()["requests_skipped"] == 1 and not list(tmp_path.iterdir())
