"""The captioning job on the real path: a tiny random BLIP loaded from disk, real images from
scikit-image (local, file://, skimage://, http on 127.0.0.1, fsspec memory://), broken ones,
and the cache across two runs."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq
import pytest
from PIL import Image

from searchrel.captions.blip import BlipCaptioner
from searchrel.captions.job import CaptionOutputs, caption_items
from searchrel.config import Config, TeacherConfig
from searchrel.tables import ContractError, read_table
from searchrel.text import item_text
from tests.captions.helpers import Images, ImageServer, caption_config, item, items_table

KEPT_CAPTION = "a cup of coffee on a saucer"
EXPECTED_STATUS = {
    "p-png": "generated",
    "p-jpg": "generated",
    "p-gray": "generated",
    "p-copy": "generated",  # the same bytes as p-jpg: captioned once, used twice
    "p-http": "generated",
    "p-skimage": "generated",
    "p-memory": "generated",
    "p-kept": "kept",
    "p-noimg": "no_image",
    "p-corrupt": "failed",
    "p-missing": "failed",
    "p-big": "failed",
    "p-404": "failed",
    "p-slow": "failed",
}
EXPECTED_FAILURES = {
    "p-corrupt": "corrupt",
    "p-missing": "not_found",
    "p-big": "too_large",
    "p-404": "http_404",
    "p-slow": "timeout",
}
DISTINCT_GOOD_IMAGES = 6  # png, jpg (= copy), gray, http chelsea.jpg, skimage rocket, memory


@pytest.fixture(scope="module")
def items_path(images: Images, image_server: ImageServer, tmp_path_factory: Any) -> Path:
    buf = io.BytesIO()
    Image.open(images.camera_png).save(buf, format="JPEG")  # p-gray's picture, other bytes
    fsspec.filesystem("memory").pipe_file("/captions-job/camera.jpg", buf.getvalue())
    rows = [
        item("p-png", str(images.astronaut_png)),
        item("p-jpg", images.coffee_jpg.as_uri()),
        item("p-gray", str(images.camera_png)),
        item("p-copy", str(images.coffee_copy_jpg)),
        item("p-http", image_server.url("img/chelsea.jpg")),
        item("p-skimage", "skimage://rocket.jpg"),
        item("p-memory", "memory://captions-job/camera.jpg"),
        item("p-kept", str(images.coffee_jpg), caption=KEPT_CAPTION),
        item("p-noimg", None),
        item("p-corrupt", str(images.corrupt_jpg)),
        item("p-missing", str(images.missing)),
        item("p-big", str(images.big_png)),
        item("p-404", image_server.url("img/not-there.jpg")),
        item("p-slow", image_server.url("slow/chelsea.jpg")),
        {**item("p-untitled", str(images.chelsea_jpg)), "title": "  "},  # breaks the contract
    ]
    path = tmp_path_factory.mktemp("items") / "items.parquet"
    pq.write_table(items_table(rows), path)
    return path


@dataclass
class Run:
    summary: dict[str, Any]
    outputs: CaptionOutputs
    captioner: BlipCaptioner

    def captions(self) -> dict[str, dict[str, Any]]:
        table = read_table(self.outputs.captions, "captions").table
        return {r["item_id"]: r for r in table.to_pylist()}

    def items(self) -> dict[str, dict[str, Any]]:
        return {r["item_id"]: r for r in read_table(self.outputs.items, "items").table.to_pylist()}

    def failures(self) -> dict[str, str]:
        table = read_table(self.outputs.failures, "caption_failures").table
        return {r["item_id"]: r["reason"] for r in table.to_pylist()}


def run_job(items: Path, out: Path, cfg: Config) -> Run:
    captioner = BlipCaptioner(cfg.captions)
    outputs = CaptionOutputs.resolve(out)
    summary = caption_items(items, outputs, cfg, captioner=captioner)
    return Run(summary, outputs, captioner)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: Any) -> Path:
    return tmp_path_factory.mktemp("caption_cache")


@pytest.fixture(scope="module")
def first(items_path: Path, tiny_blip: Path, cache_dir: Path, tmp_path_factory: Any) -> Run:
    return run_job(
        items_path, tmp_path_factory.mktemp("first"), caption_config(tiny_blip, cache_dir)
    )


@pytest.fixture(scope="module")
def second(
    first: Run, items_path: Path, tiny_blip: Path, cache_dir: Path, tmp_path_factory: Any
) -> Run:
    return run_job(
        items_path, tmp_path_factory.mktemp("second"), caption_config(tiny_blip, cache_dir)
    )


def test_the_caption_table_has_one_row_per_item_whatever_became_of_its_image(first: Run) -> None:
    captions = first.captions()
    assert {k: r["status"] for k, r in captions.items()} == EXPECTED_STATUS
    assert first.summary["statuses"] == {
        "failed": 5, "generated": 7, "kept": 1, "no_image": 1,
    }  # fmt: skip
    for row in captions.values():
        if row["status"] == "generated":
            assert row["caption"] and row["model"] == first.captioner.version
            assert len(row["image_sha256"]) == 64
    assert captions["p-copy"]["caption"] == captions["p-jpg"]["caption"]
    assert captions["p-kept"]["caption"] == KEPT_CAPTION and captions["p-kept"]["model"] is None


def test_broken_images_are_failures_with_their_reason_and_the_run_goes_on(first: Run) -> None:
    assert first.failures() == EXPECTED_FAILURES
    assert first.summary["failure_reasons"] == {
        "corrupt": 1, "http_404": 1, "not_found": 1, "timeout": 1, "too_large": 1,
    }  # fmt: skip
    items = first.items()
    assert all(items[k]["caption"] is None for k in EXPECTED_FAILURES)  # no made-up caption


def test_a_row_that_breaks_the_items_contract_is_quarantined_and_counted(first: Run) -> None:
    assert "p-untitled" not in first.items() and "p-untitled" not in first.captions()
    assert first.summary["quarantined"]["items"]["reasons"] == {"empty:title": 1}
    quarantine = pq.read_table(first.outputs.items.with_name("items.quarantine.parquet"))
    assert quarantine.column("reason").to_pylist() == ["empty:title"]


def test_generated_captions_join_the_item_text_of_the_teacher_and_the_student(
    first: Run,
) -> None:
    from transformers import AutoTokenizer

    from searchrel.model_source import resolve_model_source
    from searchrel.teacher.encoding import item_texts

    items = first.items()
    generated = {k: v for k, v in first.captions().items() if v["status"] == "generated"}
    assert all(items[k]["caption"] == v["caption"] for k, v in generated.items())
    assert items["p-kept"]["caption"] == KEPT_CAPTION
    fields = TeacherConfig().fields
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(TeacherConfig().base_model))
    rows = [items[k] for k in generated]
    for row, text in zip(rows, item_texts(tokenizer, rows, fields, 48), strict=True):
        assert f"image: {row['caption']}" in text  # what the teacher reads
        assert f"image: {row['caption']}" in item_text(row, fields)  # the shared builder


def test_images_go_to_the_model_in_batches_of_batch_size(first: Run) -> None:
    assert first.summary["cache_misses"] == DISTINCT_GOOD_IMAGES
    assert first.summary["cache_hits"] == 0
    assert first.captioner.batches == 3  # 6 distinct images, batch_size 2
    assert first.summary["model_batches"] == 3
    assert first.summary["cache"]["written"] == DISTINCT_GOOD_IMAGES


def test_a_second_run_takes_every_caption_from_the_cache_without_loading_the_model(
    first: Run, second: Run
) -> None:
    assert second.summary["cache_hits"] == DISTINCT_GOOD_IMAGES
    assert second.summary["cache_misses"] == 0
    assert second.summary["model_loaded"] is False and second.captioner.batches == 0
    assert second.captioner.model is None
    before, after = first.captions(), second.captions()
    for item_id, row in before.items():
        if row["status"] == "generated":
            assert after[item_id]["status"] == "cached"
            assert after[item_id]["caption"] == row["caption"]
    assert second.items() == first.items()


def test_failures_are_not_cached_but_tried_again_next_run(first: Run, second: Run) -> None:
    assert second.failures() == EXPECTED_FAILURES


def test_batched_captions_equal_one_image_at_a_time(
    first: Run, items_path: Path, tiny_blip: Path, tmp_path: Path
) -> None:
    cfg = caption_config(tiny_blip, tmp_path / "cache", batch_size=1)
    single = run_job(items_path, tmp_path / "out", cfg)
    assert single.captioner.batches == DISTINCT_GOOD_IMAGES
    assert {k: v["caption"] for k, v in single.captions().items()} == {
        k: v["caption"] for k, v in first.captions().items()
    }


def test_small_chunks_give_the_same_captions_and_flush_the_cache_each_step(
    first: Run, items_path: Path, tiny_blip: Path, tmp_path: Path
) -> None:
    cfg = caption_config(tiny_blip, tmp_path / "cache", chunk_size=3)
    chunked = run_job(items_path, tmp_path / "out", cfg)
    assert {k: (v["status"], v["caption"]) for k, v in chunked.captions().items()} == {
        k: (v["status"], v["caption"]) for k, v in first.captions().items()
    }  # p-copy's bytes were captioned in an earlier chunk: generated, not a cache hit
    assert chunked.summary["cache_hits"] == 0
    assert chunked.summary["cache_misses"] == DISTINCT_GOOD_IMAGES
    assert len(list((tmp_path / "cache").glob("captions-*.parquet"))) >= 2


def test_a_different_model_setting_misses_the_cache(
    first: Run, items_path: Path, tiny_blip: Path, cache_dir: Path, tmp_path: Path
) -> None:
    cfg = caption_config(tiny_blip, cache_dir, max_new_tokens=5)
    other = run_job(items_path, tmp_path, cfg)
    assert other.captioner.version != first.captioner.version
    assert other.summary["cache_hits"] == 0
    assert other.summary["cache_misses"] == DISTINCT_GOOD_IMAGES


def test_recaption_replaces_captions_the_items_already_had(
    items_path: Path, tiny_blip: Path, cache_dir: Path, tmp_path: Path
) -> None:
    cfg = caption_config(tiny_blip, cache_dir, recaption=True)
    run = run_job(items_path, tmp_path, cfg)
    assert run.captions()["p-kept"]["status"] == "cached"  # coffee.jpg's caption
    assert run.items()["p-kept"]["caption"] != KEPT_CAPTION


def test_a_batch_the_model_fails_on_fails_its_images_and_the_run_goes_on(
    items_path: Path, tiny_blip: Path, tmp_path: Path
) -> None:
    # More new tokens than the tiny model has positions: generate raises on every batch.
    cfg = caption_config(tiny_blip, tmp_path / "cache", max_new_tokens=100)
    run = run_job(items_path, tmp_path / "out", cfg)
    reasons = run.failures()
    model_failures = {k: v for k, v in reasons.items() if k not in EXPECTED_FAILURES}
    assert len(model_failures) == 7
    assert all(v.startswith("model_error:") for v in model_failures.values())
    assert run.summary["cache"]["written"] == 0


def test_outputs_need_a_directory_or_every_path() -> None:
    with pytest.raises(ContractError, match="--out"):
        CaptionOutputs.resolve(None, items=Path("i.parquet"))
