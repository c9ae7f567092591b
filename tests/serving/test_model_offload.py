"""Where a request is scored: small ones on the event loop (no thread hand-off in their
latency), large ones on the scoring thread (the loop keeps answering probes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from searchrel.config import FeatureConfig, ServeConfig
from searchrel.student.gate import _serving_model

pytestmark = pytest.mark.slow


def test_small_requests_are_scored_on_the_loop_and_large_ones_on_the_scoring_thread(
    local_run: dict,
) -> None:
    student = Path(local_run["outputs"]["student"])
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    ids = ids.to_pylist()
    model = _serving_model().StudentModel(student, ServeConfig(offload_pairs=4), FeatureConfig())
    model.load()
    where: list[str] = []
    score = model.score

    def recording_score(req: Any) -> Any:
        where.append(threading.current_thread().name)
        return score(req)

    model.score = recording_score  # type: ignore[method-assign]

    async def both() -> None:
        small = await model.predict({"instances": [{"query": "vase", "item_ids": ids[:4]}]})
        large = await model.predict({"instances": [{"query": "vase", "item_ids": ids[:5]}]})
        assert len(small["predictions"][0]["scores"]) == 4
        assert len(large["predictions"][0]["scores"]) == 5

    try:
        asyncio.run(both())
    finally:
        model.stop()
    assert where[0] == threading.main_thread().name
    assert where[1].startswith("searchrel-score")
