"""BLIP captions on this machine: ``BlipForConditionalGeneration``, batched, fp16 on GPU.

The model (``captions.model``: a local directory, ``pkg:``, a hub id on a cluster, or an
s3/gs URI) is loaded on the first batch, so a run whose images are all in the cache never
loads it. A batch the model fails on (out of memory, a bad tensor) fails its images with the
reason and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from searchrel.captions.base import (
    CaptionResult,
    LoadedImage,
    Progress,
    finish_caption,
    settings_id,
)
from searchrel.config import CaptionConfig
from searchrel.model_source import ModelSourceError, resolve_model_source

log = logging.getLogger(__name__)


class BlipCaptioner:
    """Captions images with a BLIP checkpoint, ``batch_size`` images per forward pass."""

    def __init__(self, cfg: CaptionConfig):
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        settings = settings_id(cfg.max_new_tokens, cfg.num_beams)
        self.version = f"blip:{cfg.model}#{settings}"
        self.batches = 0
        self.loaded = False
        self.model: Any = None
        self.processor: Any = None
        self.device: Any = None
        self.dtype: Any = None

    def load(self) -> None:
        if self.loaded:
            return
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = pick_dtype(self.cfg.precision, self.device.type)
        path = resolve_model_source(self.cfg.model)
        try:
            self.processor = BlipProcessor.from_pretrained(path)
            model = BlipForConditionalGeneration.from_pretrained(path, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise ModelSourceError(f"{self.cfg.model}: cannot load a BLIP model ({exc})") from exc
        self.model = model.to(self.device).eval()
        self.loaded = True
        log.info("BLIP %s on %s (%s)", self.cfg.model, self.device, self.dtype)

    def caption(self, images: Sequence[LoadedImage], progress: Progress) -> list[CaptionResult]:
        if not images:
            return []
        self.load()
        out: list[CaptionResult] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            out.extend(self._batch([img.image for img in batch]))
            progress(len(batch))
        return out

    def _batch(self, images: list[Any]) -> list[CaptionResult]:
        import torch

        self.batches += 1
        try:
            inputs = self.processor(images=images, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self.dtype)
            with torch.inference_mode():
                ids = self.model.generate(
                    pixel_values=pixels,
                    max_new_tokens=self.cfg.max_new_tokens,
                    num_beams=self.cfg.num_beams,
                )
            texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # OOM, bad shapes
            log.warning("BLIP batch of %d failed: %r", len(images), exc)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return [(None, f"model_error:{type(exc).__name__}")] * len(images)
        return [finish_caption(t) for t in texts]


def pick_dtype(precision: str, device_type: str) -> Any:
    """auto: fp16 on GPU (BLIP's own choice for inference), fp32 on CPU."""
    import torch

    if precision == "auto":
        return torch.float16 if device_type == "cuda" else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
