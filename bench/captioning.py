"""Captioning throughput (issue 9): BLIP images/s, one image at a time vs batched, and the cache.

    .venv/bin/python bench/captioning.py                      # CPU: tiny and BLIP-base shapes
    python bench/captioning.py --shapes base --threads 0 --images 512 --batch-size 64   # GPU
    python bench/captioning.py --model /models/blip-large --threads 0 --images 512 --batch-size 64

Real BLIP weights cannot be downloaded here (no Hub access), so the models are randomly
initialised BLIPs built from their config (``tests/captions/tiny_blip.py``): ``tiny`` (the test
model) and ``base`` (the layer sizes of Salesforce/blip-image-captioning-base: ViT-B/16 at
384 px, a 12-layer BERT-base decoder). Speed depends on the shapes, not on the weights, as
long as every caption has the same length: the generation config forces exactly
``--new-tokens`` tokens (a trained BLIP stops at its own end token, usually sooner; with
``--model`` a real checkpoint's captions end where it ends them). Both runs
of a shape caption the same decoded skimage images with ``BlipCaptioner`` in the same process,
after a warm-up batch: ``batch_size=1`` (the baseline) and ``--batch-size``. ``--threads 1`` by
default: our two cores are shared, and two OpenMP threads waiting on a busy core make the
many tiny ops of a batch-1 step erratic. The job section runs ``caption_items`` twice on
``--job-images`` distinct JPEG files (crops of skimage images) with the tiny model and one
cache: cold (every image captioned) and warm (every caption from the cache, the model never
loaded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from searchrel.captions.base import LoadedImage  # noqa: E402
from searchrel.captions.blip import BlipCaptioner  # noqa: E402
from searchrel.captions.fetch import decode_image, image_sha256  # noqa: E402
from searchrel.captions.job import CaptionOutputs, caption_items  # noqa: E402
from searchrel.config import CaptionConfig, load_config  # noqa: E402
from tests.captions.tiny_blip import build_tiny_blip  # noqa: E402

log = logging.getLogger("captioning")

SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "horse", "page")


def sample_jpegs(n: int, out_dir: Path) -> list[Path]:
    """``n`` distinct JPEG files: shifted 256x256-or-larger crops of skimage's sample images."""
    import skimage.data
    from PIL import Image

    sources = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in SKIMAGE]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = sources[i % len(sources)]
        shift = 4 * (i // len(sources))
        w, h = img.size
        crop = img.crop((shift % (w // 4), shift % (h // 4), w - 1, h - 1))
        path = out_dir / f"img-{i:05d}.jpg"
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def loaded_images(paths: list[Path]) -> list[LoadedImage]:
    out = []
    for path in paths:
        data = path.read_bytes()
        out.append(LoadedImage(image_sha256(data), data, decode_image(data, 10**9)))
    return out


def time_captioner(
    model_dir: Path | str, images: list[LoadedImage], batch_size: int, new_tokens: int
) -> dict[str, Any]:
    cfg = CaptionConfig(model=str(model_dir), batch_size=batch_size, max_new_tokens=new_tokens)
    captioner = BlipCaptioner(cfg)
    captioner.caption(images[:batch_size], lambda n: None)  # load + warm-up batch
    started = time.perf_counter()
    results = captioner.caption(images, lambda n: None)
    seconds = time.perf_counter() - started
    failed = sum(1 for text, _ in results if text is None)
    return {
        "batch_size": batch_size,
        "images": len(images),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(images) / seconds, 2),
        "failed": failed,
        "device": str(captioner.device),
        "dtype": str(captioner.dtype).replace("torch.", ""),
        "parameters": sum(p.numel() for p in captioner.model.parameters()),
    }


def bench_job(model_dir: Path, paths: list[Path], work: Path, new_tokens: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from searchrel.schema import ITEMS

    rows = [
        {name: None for name in ITEMS.names}
        | {"item_id": f"b-{i}", "locale": "en-US", "title": f"pin {i}", "image_uri": str(p)}
        for i, p in enumerate(paths)
    ]
    items = work / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ITEMS), items)
    overrides = {"model": str(model_dir), "cache_dir": str(work / "cache"), "batch_size": 16,
                 "max_new_tokens": new_tokens}  # fmt: skip
    cfg = load_config(None, overrides={"captions": overrides})
    runs = {}
    for name in ("cold", "warm"):
        started = time.perf_counter()
        summary = caption_items(items, CaptionOutputs.resolve(work / name), cfg)
        seconds = time.perf_counter() - started
        runs[name] = {
            "seconds": round(seconds, 3),
            "images_per_s": round(len(paths) / seconds, 1),
            "cache_hits": summary["cache_hits"],
            "cache_misses": summary["cache_misses"],
            "model_loaded": summary["model_loaded"],
            "statuses": summary["statuses"],
        }
    runs["warm_over_cold"] = round(runs["warm"]["images_per_s"] / runs["cold"]["images_per_s"], 1)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--model", help="time this BLIP checkpoint (dir, hub id) instead of shapes")
    parser.add_argument("--images", type=int, default=24, help="images per timed run")
    parser.add_argument("--batch-size", type=int, default=8, help="the batched run's batch size")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens per caption (forced)")
    parser.add_argument("--job-images", type=int, default=200, help="images in the job runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/captioning.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="searchrel-captioning-") as tmp:
        work = Path(tmp)
        paths = sample_jpegs(max(args.images, args.job_images), work / "images")
        images = loaded_images(paths[: args.images])
        shapes: dict[str, Any] = {}
        models = {"given": args.model} if args.model else {
            shape: build_tiny_blip(work / f"blip-{shape}", shape=shape,
                                   min_new_tokens=args.new_tokens)
            for shape in args.shapes
        }  # fmt: skip
        for shape, model_dir in models.items():
            one = time_captioner(model_dir, images, 1, args.new_tokens)
            log.info("%s, batch 1: %.2f images/s", shape, one["images_per_s"])
            batched = time_captioner(model_dir, images, args.batch_size, args.new_tokens)
            log.info("%s, batch %d: %.2f images/s", shape, args.batch_size, batched["images_per_s"])
            shapes[shape] = {
                "batch_1": one,
                f"batch_{args.batch_size}": batched,
                "batched_over_batch_1": round(batched["images_per_s"] / one["images_per_s"], 2),
            }
        job_model = build_tiny_blip(work / "blip-job", min_new_tokens=args.new_tokens)
        job = bench_job(job_model, paths[: args.job_images], work, args.new_tokens)
        log.info("job: cold %s, warm %s", job["cold"], job["warm"])

    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_info(),
        "load_average_1m": {
            "before": round(load_before[0], 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "model_note": (
            "randomly initialised BLIPs built from their config (real BLIP weights cannot be "
            "downloaded here): speed depends on the layer shapes and the forced caption length, "
            "not on the weights; the captions themselves are meaningless"
        ),
        "new_tokens_per_caption": args.new_tokens,
        "shapes": shapes,
        "job_tiny_model": {"images": args.job_images, **job},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("shapes", "job_tiny_model")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
