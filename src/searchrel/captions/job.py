"""The captioning job: caption the items' images and write them back into the items table.

    searchrel caption --items items.parquet --out captions/

Reads the items (validated; bad rows quarantined), and for every item without a caption that
has an ``image_uri`` (every item with one, under ``captions.recaption``): fetches the image,
looks its bytes' sha256 up in the caption cache, and captions only the misses, ``batch_size``
at a time. Images are handled ``chunk_size`` at a time: fetched concurrently, captioned, and
the chunk's new captions flushed to the cache, so a killed run keeps what it finished.
Outputs:

    items.parquet             the items, captions filled in: what the teacher and student read
    captions.parquet          one row per item: generated, cached, kept, no_image or failed
    caption_failures.parquet  items whose image failed, with the reason (retried next run)
    caption_summary.json      counts: statuses, cache hits and misses, failure reasons, speed
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from searchrel.captions.base import Captioner, LoadedImage
from searchrel.captions.blip import BlipCaptioner
from searchrel.captions.cache import CaptionCache
from searchrel.captions.fetch import ImageError, decode_image, fetch_images, image_sha256
from searchrel.captions.vlm import VlmCaptioner
from searchrel.config import CaptionConfig, Config
from searchrel.schema import CAPTION_FAILURES, CAPTIONS
from searchrel.tables import ContractError, quarantine_path, read_table, write_table

log = logging.getLogger(__name__)

GENERATED, CACHED, KEPT, NO_IMAGE, FAILED = "generated", "cached", "kept", "no_image", "failed"


@dataclass(frozen=True)
class CaptionOutputs:
    """Where the job writes: one path per output (a KFP artifact each, or files in one dir)."""

    items: Path
    captions: Path
    failures: Path
    summary: Path | None = None

    @classmethod
    def resolve(
        cls,
        out: Path | None,
        items: Path | None = None,
        captions: Path | None = None,
        failures: Path | None = None,
        summary: Path | None = None,
    ) -> CaptionOutputs:
        """Paths given one by one win; the rest are default names under ``out``."""
        if out is None:
            if items is None or captions is None or failures is None:
                raise ContractError(
                    "caption: give --out DIR, or all of --items-out, --captions and --failures"
                )
            return cls(items, captions, failures, summary)
        return cls(
            items or out / "items.parquet",
            captions or out / "captions.parquet",
            failures or out / "caption_failures.parquet",
            summary or out / "caption_summary.json",
        )


@dataclass
class Outcome:
    """What became of one image URI."""

    status: str  # generated, cached or failed
    sha256: str | None = None
    caption: str | None = None
    reason: str | None = None


def wants_caption(row: dict[str, Any], recaption: bool) -> bool:
    has_image = bool((row.get("image_uri") or "").strip())
    has_caption = bool((row.get("caption") or "").strip())
    return has_image and (recaption or not has_caption)


class _Run:
    """One pass over the URIs: fetch, look up, caption misses, fill the cache."""

    def __init__(self, captioner: Captioner, cache: CaptionCache, cfg: Config, bar: Any):
        self.captioner = captioner
        self.cache = cache
        self.cfg = cfg.captions
        self.bar = bar
        self.outcomes: dict[str, Outcome] = {}
        self.hits: set[str] = set()  # distinct images (by hash) found in the cache
        self.misses: set[str] = set()  # distinct images sent to the model
        self.model_seconds = 0.0
        self.model_images = 0

    def chunk(self, uris: list[str]) -> None:
        fetched = fetch_images(uris, self.cfg)
        todo: dict[str, LoadedImage] = {}
        uris_of: dict[str, list[str]] = {}
        for uri in uris:
            got = fetched[uri]
            if isinstance(got, ImageError):
                self._done(uri, Outcome(FAILED, reason=got.reason))
                continue
            sha = image_sha256(got)
            hit = self.cache.get(sha, self.captioner.version)
            if hit is not None:
                if sha in self.misses:  # captioned in an earlier chunk of this run
                    self._done(uri, Outcome(GENERATED, sha, hit))
                    continue
                self.hits.add(sha)
                self._done(uri, Outcome(CACHED, sha, hit))
                continue
            if sha in uris_of:  # the same bytes under another URI in this chunk
                uris_of[sha].append(uri)
                continue
            try:
                image = decode_image(got, self.cfg.max_image_pixels)
            except ImageError as exc:
                self._done(uri, Outcome(FAILED, sha, reason=exc.reason))
                continue
            todo[sha] = LoadedImage(sha, got, image)
            uris_of[sha] = [uri]
        if todo:
            self._caption(list(todo.values()), uris_of)
        self.cache.flush()

    def _caption(self, images: list[LoadedImage], uris_of: dict[str, list[str]]) -> None:
        self.misses.update(img.sha256 for img in images)
        started = time.perf_counter()
        results = self.captioner.caption(images, self.bar.update)
        self.model_seconds += time.perf_counter() - started
        self.model_images += len(images)
        for img, (text, reason) in zip(images, results, strict=True):
            if text is not None:
                self.cache.put(img.sha256, self.captioner.version, text)
                outcome = Outcome(GENERATED, img.sha256, text)
            else:
                outcome = Outcome(FAILED, img.sha256, reason=reason or "no_caption")
            first, *same = uris_of[img.sha256]
            self.outcomes[first] = outcome
            for uri in same:
                self._done(uri, outcome)

    def _done(self, uri: str, outcome: Outcome) -> None:
        self.outcomes[uri] = outcome
        self.bar.update(1)


def make_captioner(cfg: CaptionConfig) -> Captioner:
    if cfg.backend == "vlm":
        return VlmCaptioner(cfg)
    return BlipCaptioner(cfg)


def caption_items(
    items_path: Path,
    outputs: CaptionOutputs,
    cfg: Config,
    captioner: Captioner | None = None,
) -> dict[str, Any]:
    """Caption the items' images; see the module doc. Returns the summary."""
    started = time.perf_counter()
    ccfg = cfg.captions
    read = read_table(items_path, "items", quarantine_to=quarantine_path(outputs.items))
    rows = read.table.to_pylist()
    wanted = [i for i, row in enumerate(rows) if wants_caption(row, ccfg.recaption)]
    uris = list(dict.fromkeys(rows[i]["image_uri"].strip() for i in wanted))
    captioner = captioner or make_captioner(ccfg)
    cache = CaptionCache(ccfg.cache_dir or None)
    entries_at_start = len(cache)
    with tqdm(total=len(uris), desc="captioning", unit="image", dynamic_ncols=True) as bar:
        run = _Run(captioner, cache, cfg, bar)
        for start in range(0, len(uris), ccfg.chunk_size):
            run.chunk(uris[start : start + ccfg.chunk_size])

    captions, failures = [], []
    wanted_set = set(wanted)
    for i, row in enumerate(rows):
        uri = (row.get("image_uri") or "").strip()
        if i not in wanted_set:
            status = KEPT if (row.get("caption") or "").strip() else NO_IMAGE
            captions.append(_caption_row(row["item_id"], None, row.get("caption"), None, status))
            continue
        outcome = run.outcomes[uri]
        captions.append(_caption_row(row["item_id"], outcome.sha256, outcome.caption,
                                     captioner.version, outcome.status))  # fmt: skip
        if outcome.status == FAILED:
            failures.append(
                {"item_id": row["item_id"], "image_uri": uri, "reason": str(outcome.reason)}
            )
        else:
            row["caption"] = outcome.caption
    write_table(pa.Table.from_pylist(rows, schema=read.table.schema), outputs.items, "items")
    write_table(pa.Table.from_pylist(captions, schema=CAPTIONS), outputs.captions, "captions")
    write_table(
        pa.Table.from_pylist(failures, schema=CAPTION_FAILURES), outputs.failures,
        "caption_failures",
    )  # fmt: skip

    seconds = time.perf_counter() - started
    summary = {
        "stage": "caption",
        "backend": ccfg.backend,
        "model": captioner.version,
        "items": len(rows),
        "statuses": dict(sorted(Counter(c["status"] for c in captions).items())),
        "images": len(uris),
        "cache_hits": len(run.hits),
        "cache_misses": len(run.misses),
        "cache": {**cache.summary(), "entries_at_start": entries_at_start},
        "model_loaded": captioner.loaded,
        "model_batches": captioner.batches,
        "failed": len(failures),
        "failure_reasons": dict(sorted(Counter(f["reason"] for f in failures).items())),
        "images_per_second": (
            round(run.model_images / run.model_seconds, 2) if run.model_seconds else None
        ),
        "quarantined": {"items": read.summary()},
        "seconds": round(seconds, 2),
    }
    if outputs.summary is not None:
        outputs.summary.parent.mkdir(parents=True, exist_ok=True)
        outputs.summary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info(
        "captioned %d item(s): %s; cache hits %d, misses %d",
        len(rows), summary["statuses"], len(run.hits), len(run.misses),
    )  # fmt: skip
    return summary


def _caption_row(
    item_id: str, sha: str | None, caption: str | None, model: str | None, status: str
) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "image_sha256": sha,
        "caption": caption,
        "model": model,
        "status": status,
    }
