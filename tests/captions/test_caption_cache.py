"""The caption cache: keyed by image hash and model, persisted atomically, robust to bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from searchrel.captions import cache as cache_mod
from searchrel.captions.cache import CaptionCache
from searchrel.schema import CAPTION_CACHE

SHA_A, SHA_B = "a" * 64, "b" * 64


def test_captions_come_back_by_image_hash_and_model_after_a_restart(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path)
    cache.put(SHA_A, "blip:x#1", "a cat on a sofa")
    cache.put(SHA_B, "blip:x#1", "a cup of coffee")
    assert cache.flush() == 2
    reloaded = CaptionCache(tmp_path)
    assert reloaded.get(SHA_A, "blip:x#1") == "a cat on a sofa"
    assert reloaded.get(SHA_A, "blip:x#2") is None  # another model: a miss
    assert reloaded.get("c" * 64, "blip:x#1") is None
    assert len(reloaded) == 2


def test_no_directory_means_no_cache(tmp_path: Path) -> None:
    cache = CaptionCache(None)
    cache.put(SHA_A, "m", "caption")
    assert cache.flush() == 0 and list(tmp_path.iterdir()) == []


def test_each_flush_is_one_file_written_by_rename_and_empty_flushes_write_nothing(
    tmp_path: Path,
) -> None:
    cache = CaptionCache(tmp_path / "c")
    assert cache.flush() == 0
    cache.put(SHA_A, "m", "one")
    cache.flush()
    cache.put(SHA_B, "m", "two")
    cache.flush()
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(names) == 2 and all(n.startswith("captions-") for n in names)  # no temporaries


def test_unreadable_files_and_bad_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    good = CaptionCache(tmp_path)
    good.put(SHA_A, "m", "a good caption")
    good.flush()
    (tmp_path / "captions-broken.parquet").write_bytes(b"PAR1 not parquet")
    now = dt.datetime.now(dt.UTC)
    bad_rows = pa.table(
        {"image_sha256": [SHA_B, SHA_B], "model": ["m", "m"], "caption": ["", "dup ok"],
         "created": pa.array([now, now], pa.timestamp("ms", tz="UTC"))},
        schema=CAPTION_CACHE,
    )  # fmt: skip
    pq.write_table(bad_rows, tmp_path / "captions-bad-rows.parquet")
    cache = CaptionCache(tmp_path)
    assert cache.unreadable == 1 and cache.quarantined == 1  # the empty caption
    assert cache.get(SHA_A, "m") == "a good caption"
    assert cache.get(SHA_B, "m") == "dup ok"


def test_many_files_are_merged_into_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "COMPACT_AT", 3)
    cache = CaptionCache(tmp_path)
    for i in range(3):
        cache.put(f"{i:064d}", "m", f"caption {i}")
        cache.flush()
    assert len(list(tmp_path.glob("captions-*.parquet"))) == 1
    reloaded = CaptionCache(tmp_path)
    assert {reloaded.get(f"{i:064d}", "m") for i in range(3)} == {
        "caption 0",
        "caption 1",
        "caption 2",
    }
