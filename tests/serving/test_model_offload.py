"""Where a request is scored: small ones on the event loop (no thread hand-off in their
latency), large or costly ones on the scoring thread (the loop keeps answering probes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from searchrel.config import FeatureConfig, ServeConfig
from searchrel.serving.model import StudentModel

pytestmark = pytest.mark.slow


def test_small_requests_are_scored_on_the_loop_and_costly_ones_on_the_scoring_thread(
    local_run: dict,
) -> None:
    student = Path(local_run["outputs"]["student"])
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    ids = ids.to_pylist()
    cfg = ServeConfig(offload_pairs=4, inline_items=True)
    model = StudentModel(student, cfg, FeatureConfig())
    model.load()
    where: list[str] = []
    score = model.score

    def recording_score(req: Any) -> Any:
        where.append(threading.current_thread().name)
        return score(req)

    model.score = recording_score  # type: ignore[method-assign]

    async def ask(body: Any) -> Any:
        return await model.predict(model.preprocess(body))  # as KServe calls them

    async def both() -> None:
        small = await ask({"instances": [{"query": "vase", "item_ids": ids[:4]}]})
        large = await ask({"instances": [{"query": "vase", "item_ids": ids[:5]}]})
        assert len(small["predictions"][0]["scores"]) == 4
        assert len(large["predictions"][0]["scores"]) == 5
        # Few pairs, but costly: every query (or inline item) is embedded on the fly.
        two = [{"query": q, "item_ids": ids[:1]} for q in ("vase", "lamp")]
        await ask({"instances": two})
        inline = {"query": "vase", "item_ids": ["new-1"], "items": [{"item_id": "new-1",
                  "title": "a red vase"}]}  # fmt: skip
        await ask({"instances": [inline]})

    try:
        asyncio.run(both())
    finally:
        model.stop()
    assert where[0] == threading.main_thread().name  # 4 pairs, one query
    assert where[1].startswith("searchrel-score")  # 5 pairs
    assert all(w.startswith("searchrel-score") for w in where[2:5])  # 2 queries; inline items
    assert len(where) == 5


def test_by_default_every_request_is_scored_off_the_event_loop(local_run: dict) -> None:
    """So the event loop is free for health probes however busy scoring is."""
    student = Path(local_run["outputs"]["student"])
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    model = StudentModel(student, ServeConfig(), FeatureConfig())
    model.load()
    where: list[str] = []
    score = model.score

    def recording_score(req: Any) -> Any:
        where.append(threading.current_thread().name)
        return score(req)

    model.score = recording_score  # type: ignore[method-assign]
    body = {"instances": [{"query": "vase", "item_ids": ids.to_pylist()[:1]}]}
    try:
        asyncio.run(model.predict(model.preprocess(body)))
    finally:
        model.stop()
    assert len(where) == 1 and where[0].startswith("searchrel-score")
