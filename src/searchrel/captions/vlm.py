"""Captions from a served vision-language model (TGI, vLLM, any OpenAI-compatible chat endpoint).

Each image is sent as a ``data:`` URL in an OpenAI-style ``image_url`` content part, with the
configured instruction, through ``huggingface_hub.InferenceClient``. ``vlm_concurrency``
requests are in flight at once, each with a timeout; timeouts, connection errors, 408, 429
and 5xx are retried with exponential backoff. An image that still fails is recorded with its
reason and retried by the next run; it never gets a made-up caption.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from searchrel.captions.base import (
    CaptionResult,
    LoadedImage,
    Progress,
    finish_caption,
    settings_id,
)
from searchrel.config import CaptionConfig
from searchrel.endpoints import EndpointError, classify, let_endpoints_through_offline_mode

log = logging.getLogger(__name__)

SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def data_url(image: LoadedImage, max_side: int) -> str:
    """The image as a data URL: its own bytes where small and common, else a JPEG re-encode."""
    from PIL import Image

    original = Image.open(io.BytesIO(image.data))
    mime = SENT_AS_IS.get(original.format or "")
    if mime and max(original.size) <= max_side:
        payload = image.data
    else:
        copy = image.image.copy()
        copy.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        copy.save(buf, format="JPEG", quality=90)
        payload, mime = buf.getvalue(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


class VlmCaptioner:
    """A served VLM that captions images; implements the captioner protocol."""

    def __init__(self, cfg: CaptionConfig, client: Any = None):
        from huggingface_hub import InferenceClient

        self.cfg = cfg
        if client is None:
            let_endpoints_through_offline_mode()
        self.client = client or InferenceClient(
            base_url=cfg.vlm_url,
            timeout=cfg.vlm_timeout_s,
            api_key=os.environ.get(cfg.vlm_api_key_env),
        )
        # The model and the instruction make the captions; the URL (one of many replicas) does not.
        settings = settings_id(cfg.vlm_prompt, cfg.max_new_tokens, cfg.vlm_max_side)
        self.version = f"vlm:{cfg.vlm_model or 'default'}#{settings}"
        self.batch_size = cfg.vlm_concurrency * 4
        self.batches = 0
        self.loaded = True  # nothing to load: the model lives on the server

    def messages(self, image: LoadedImage) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": self.cfg.vlm_prompt},
                    {
                        "type": "image_url",
                        "image_url": {"url": data_url(image, self.cfg.vlm_max_side)},
                    },
                ],
            }
        ]

    def caption_one(self, image: LoadedImage) -> CaptionResult:
        messages = self.messages(image)
        failure = EndpointError("not_attempted", False)
        for attempt in range(self.cfg.vlm_retries + 1):
            if attempt:
                time.sleep(self.cfg.vlm_backoff_s * 2 ** (attempt - 1))
            try:
                output = self.client.chat_completion(
                    messages,
                    model=self.cfg.vlm_model or None,
                    max_tokens=self.cfg.max_new_tokens,
                    temperature=0.0,
                )
                return finish_caption(output.choices[0].message.content)
            except Exception as exc:
                failure = classify(exc)
                log.debug("VLM request failed (%s): %r", failure.reason, exc)
                if not failure.retryable:
                    break
        return None, failure.reason

    def caption(self, images: Sequence[LoadedImage], progress: Progress) -> list[CaptionResult]:
        if not images:
            return []
        self.batches += 1

        def one(image: LoadedImage) -> CaptionResult:
            result = self.caption_one(image)
            progress(1)
            return result

        with ThreadPoolExecutor(max_workers=self.cfg.vlm_concurrency) as pool:
            return list(pool.map(one, images))
