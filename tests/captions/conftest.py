"""Captioning fixtures: a tiny random BLIP saved to disk, real images from scikit-image written
as PNG and JPEG, broken files, and an HTTP image server on 127.0.0.1 (one image slow, one 404)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.captions.helpers import MAX_BYTES, SLOW_S, Images, ImageServer


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.captions.tiny_blip import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    import skimage.data
    from PIL import Image

    out = tmp_path_factory.mktemp("images")
    Image.fromarray(skimage.data.astronaut()).save(out / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(out / "coffee.jpg", quality=85)
    Image.fromarray(skimage.data.chelsea()).save(out / "chelsea.jpg", quality=85)
    Image.fromarray(skimage.data.camera()).save(out / "camera.png")
    (out / "coffee-copy.jpg").write_bytes((out / "coffee.jpg").read_bytes())
    (out / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 64)
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(out / "big.png")
    assert (out / "big.png").stat().st_size > MAX_BYTES
    return Images(
        dir=out,
        astronaut_png=out / "astronaut.png",
        coffee_jpg=out / "coffee.jpg",
        chelsea_jpg=out / "chelsea.jpg",
        camera_png=out / "camera.png",
        coffee_copy_jpg=out / "coffee-copy.jpg",
        corrupt_jpg=out / "corrupt.jpg",
        big_png=out / "big.png",
        missing=out / "missing.jpg",
    )


@pytest.fixture(scope="session")
def image_server(images: Images) -> Iterator[ImageServer]:
    """/img/NAME serves images.dir/NAME; /slow/NAME waits SLOW_S first; anything else is 404."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            _, kind, name = [*self.path.split("/", 2), "", ""][:3]
            path = images.dir / name
            if kind not in ("img", "slow") or not name or not path.is_file():
                self.send_error(404)
                return
            if kind == "slow":
                time.sleep(SLOW_S)
            data = path.read_bytes()
            try:
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
