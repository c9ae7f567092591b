"""The VLM backend through huggingface_hub.InferenceClient, against an OpenAI-compatible
/v1/chat/completions server on 127.0.0.1 (stdlib) that decodes the image data URL it is sent
and answers with a caption naming the image's hash, so the test sees the image arrived whole.
The server fails the ways real ones do when the request's model asks it to."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image

from searchrel.captions.base import LoadedImage
from searchrel.captions.fetch import decode_image, image_sha256
from searchrel.captions.job import CaptionOutputs, caption_items
from searchrel.captions.vlm import VlmCaptioner, data_url
from searchrel.config import CaptionConfig
from searchrel.tables import read_table
from tests.captions.helpers import Images, caption_config, item, items_table

PROMPT = "Describe this image in one short sentence."


class VlmServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()


@pytest.fixture(scope="module")
def vlm() -> Iterator[tuple[str, VlmServer]]:
    state = VlmServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with state.lock:
                state.requests.append(body)
            if not self.path.endswith("/chat/completions"):
                return self._send(404, {"error": "not found"})
            model = body.get("model") or "default"
            if model == "fail-500":
                return self._send(500, {"error": "the GPU caught fire"})
            parts = body["messages"][0]["content"]
            text = next(p["text"] for p in parts if p["type"] == "text")
            url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
            header, _, payload = url.partition(",")
            if not header.startswith("data:image/") or not header.endswith(";base64"):
                return self._send(400, {"error": f"not an image data URL: {header}"})
            raw = base64.b64decode(payload)
            Image.open(io.BytesIO(raw)).verify()  # a real image arrived
            caption = "" if model == "empty" else f"a picture {hashlib.sha256(raw).hexdigest()[:8]}"
            assert text == PROMPT
            return self._send(200, {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": caption}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
            })  # fmt: skip

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def loaded(path: Path) -> LoadedImage:
    data = path.read_bytes()
    return LoadedImage(image_sha256(data), data, decode_image(data, 10**8))


def test_small_jpegs_are_sent_as_they_are_and_large_images_scaled_down(images: Images) -> None:
    coffee = loaded(images.coffee_jpg)  # 600 x 400
    url = data_url(coffee, max_side=768)
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == coffee.data
    small = data_url(coffee, max_side=100)
    assert max(Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size) == 100


def test_the_endpoint_gets_the_image_and_its_caption_comes_back(
    vlm: tuple[str, VlmServer], images: Images
) -> None:
    url, _ = vlm
    captioner = VlmCaptioner(CaptionConfig(backend="vlm", vlm_url=url, vlm_model="tiny-vlm"))
    imgs = [loaded(images.coffee_jpg), loaded(images.camera_png)]
    out = captioner.caption(imgs, lambda n: None)
    assert out == [(f"a picture {img.sha256[:8]}", None) for img in imgs]
    assert captioner.version.startswith("vlm:tiny-vlm#")


def test_server_errors_are_retried_then_recorded_with_their_reason(
    vlm: tuple[str, VlmServer], images: Images
) -> None:
    url, state = vlm
    cfg = CaptionConfig(
        backend="vlm", vlm_url=url, vlm_model="fail-500", vlm_retries=2, vlm_backoff_s=0.01
    )
    before = len(state.requests)
    out = VlmCaptioner(cfg).caption([loaded(images.coffee_jpg)], lambda n: None)
    assert out == [(None, "http_500")]
    assert len(state.requests) - before == 3  # one try and two retries


def test_an_empty_answer_is_a_failure_not_a_caption(
    vlm: tuple[str, VlmServer], images: Images
) -> None:
    url, _ = vlm
    cfg = CaptionConfig(backend="vlm", vlm_url=url, vlm_model="empty")
    assert VlmCaptioner(cfg).caption([loaded(images.coffee_jpg)], lambda n: None) == [
        (None, "empty_caption")
    ]


def test_the_job_with_the_vlm_backend_fills_captions_and_caches_them(
    vlm: tuple[str, VlmServer], images: Images, tmp_path: Path
) -> None:
    url, state = vlm
    rows = [item("v-1", str(images.chelsea_jpg)), item("v-2", str(images.corrupt_jpg))]
    pq.write_table(items_table(rows), tmp_path / "items.parquet")
    cfg = caption_config("unused", tmp_path / "cache", backend="vlm", vlm_url=url)
    first = caption_items(tmp_path / "items.parquet", CaptionOutputs.resolve(tmp_path / "a"), cfg)
    sha = image_sha256(images.chelsea_jpg.read_bytes())
    got = read_table(tmp_path / "a" / "items.parquet", "items").table.to_pylist()
    assert got[0]["caption"] == f"a picture {sha[:8]}"
    assert first["statuses"] == {"failed": 1, "generated": 1}
    before = len(state.requests)
    second = caption_items(tmp_path / "items.parquet", CaptionOutputs.resolve(tmp_path / "b"), cfg)
    assert second["cache_hits"] == 1 and second["cache_misses"] == 0
    assert len(state.requests) == before  # nothing sent: the cache answered
