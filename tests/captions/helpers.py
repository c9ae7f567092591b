"""Helpers of the captioning tests: the config they run under and items to caption."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from searchrel.config import Config, load_config
from searchrel.schema import ITEMS

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
SLOW_S = 3.0  # how long the image server's slow route waits before answering
HTTP_TIMEOUT_S = 0.5  # the tests' captions.http_timeout_s
MAX_BYTES = 1_000_000  # the tests' captions.max_image_bytes; big.png is larger


@dataclass(frozen=True)
class Images:
    dir: Path
    astronaut_png: Path
    coffee_jpg: Path
    chelsea_jpg: Path
    camera_png: Path  # grayscale
    coffee_copy_jpg: Path  # the same bytes as coffee.jpg under another name
    corrupt_jpg: Path  # a JPEG header and garbage
    big_png: Path  # more than MAX_BYTES
    missing: Path  # never written

    def bytes_of(self, path: Path) -> bytes:
        return path.read_bytes()


@dataclass(frozen=True)
class ImageServer:
    base: str
    requests: list[str]

    def url(self, route: str) -> str:
        return f"{self.base}/{route}"


def caption_config(model: Path | str, cache_dir: Path | str, **extra: Any) -> Config:
    settings = {
        "model": str(model),
        "cache_dir": str(cache_dir),
        "batch_size": 2,
        "max_new_tokens": 8,
        "http_timeout_s": HTTP_TIMEOUT_S,
        "max_image_bytes": MAX_BYTES,
        **extra,
    }
    return load_config(TINY_CONFIG, overrides={"captions": settings})


def item(item_id: str, image_uri: str | None, caption: str | None = None) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "locale": "en-US",
        "title": f"Pin {item_id}",
        "description": None,
        "image_uri": image_uri,
        "caption": caption,
        "board_titles": None,
        "engaged_queries": None,
        "link_title": None,
        "link_description": None,
    }


def items_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ITEMS)
