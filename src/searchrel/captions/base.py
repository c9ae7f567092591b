"""What every captioner does: images in, one caption or one failure reason per image out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from searchrel.text import clean_text

if TYPE_CHECKING:
    from PIL.Image import Image

Progress = Callable[[int], Any]
CaptionResult = tuple[str | None, str | None]  # (caption, None) or (None, reason)
MAX_CAPTION_CHARS = 500  # a VLM that rambles is cut here


@dataclass(frozen=True)
class LoadedImage:
    """An image to caption: its bytes (a VLM is sent them), their hash and the decoded image."""

    sha256: str
    data: bytes
    image: Image


class Captioner(Protocol):
    version: str  # the model and its generation settings: part of the cache key
    batch_size: int  # images per call of ``caption``
    batches: int  # model calls made so far
    loaded: bool  # whether the model was loaded (a run of cache hits never loads it)

    def caption(self, images: Sequence[LoadedImage], progress: Progress) -> list[CaptionResult]: ...


def settings_id(*parts: object) -> str:
    """A short, stable id of the settings that shape the captions."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12]


def finish_caption(text: str | None) -> CaptionResult:
    """A model's output as a caption, or the reason it is not one."""
    cleaned = clean_text(text)[:MAX_CAPTION_CHARS].strip()
    if not cleaned:
        return None, "empty_caption"
    if "\ufffd" in cleaned:
        return None, "undecodable_caption"
    return cleaned, None
