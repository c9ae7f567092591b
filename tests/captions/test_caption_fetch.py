"""Image loading: every source gives the file's exact bytes, every failure a reason (no network:
local files, an HTTP server on 127.0.0.1, fsspec's in-memory filesystem)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from searchrel.captions.fetch import (
    ImageError,
    decode_image,
    fetch_images,
    image_sha256,
    read_image_bytes,
    resolve_image_uri,
)
from searchrel.config import CaptionConfig
from tests.captions.helpers import HTTP_TIMEOUT_S, MAX_BYTES, SLOW_S, Images, ImageServer

CFG = CaptionConfig(max_image_bytes=MAX_BYTES, http_timeout_s=HTTP_TIMEOUT_S)


def reason(uri: str, cfg: CaptionConfig = CFG) -> str:
    with pytest.raises(ImageError) as err:
        read_image_bytes(uri, cfg)
    return err.value.reason


def test_local_paths_file_uris_and_skimage_names_give_the_files_bytes(images: Images) -> None:
    want = images.coffee_jpg.read_bytes()
    assert read_image_bytes(str(images.coffee_jpg), CFG) == want
    assert read_image_bytes(images.coffee_jpg.as_uri(), CFG) == want
    assert read_image_bytes("skimage://coffee.png", CFG)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_file_fails_as_not_found(images: Images) -> None:
    assert reason(str(images.missing)) == "not_found"
    assert reason(str(images.dir)) == "not_found"  # a directory is no image
    assert reason("skimage://no-such-image.png") == "not_found"


def test_a_file_over_the_byte_limit_fails_as_too_large(images: Images) -> None:
    assert reason(str(images.big_png)) == "too_large"
    small = CFG.model_copy(update={"max_image_bytes": 100})
    assert reason(str(images.coffee_jpg), small) == "too_large"


def test_http_images_are_downloaded_whole(images: Images, image_server: ImageServer) -> None:
    got = read_image_bytes(image_server.url("img/chelsea.jpg"), CFG)
    assert got == images.chelsea_jpg.read_bytes()


def test_http_404_and_refused_connections_fail_with_their_reason(
    image_server: ImageServer,
) -> None:
    assert reason(image_server.url("img/nothing-here.jpg")) == "http_404"
    assert reason("http://127.0.0.1:9/x.jpg") == "connection_error"  # the discard port: closed


def test_a_slow_http_server_fails_as_timeout_within_the_timeout(
    image_server: ImageServer,
) -> None:
    started = time.monotonic()
    assert reason(image_server.url("slow/chelsea.jpg")) == "timeout"
    assert time.monotonic() - started < SLOW_S - 1


def test_an_http_image_over_the_limit_is_not_downloaded(image_server: ImageServer) -> None:
    assert reason(image_server.url("img/big.png")) == "too_large"


def test_fsspec_memory_filesystem_stands_in_for_object_stores(images: Images) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/captions-test/camera.png", images.camera_png.read_bytes())
    got = read_image_bytes("memory://captions-test/camera.png", CFG)
    assert got == images.camera_png.read_bytes()
    assert reason("memory://captions-test/absent.png") == "not_found"
    fs.pipe_file("/captions-test/big.png", images.big_png.read_bytes())
    assert reason("memory://captions-test/big.png") == "too_large"


def test_object_stores_without_their_filesystem_package_say_which_is_missing() -> None:
    assert reason("gs://bucket/pin.jpg") == "no_filesystem:gs"  # gcsfs is not installed here
    assert reason("nosuch://bucket/pin.jpg") == "unsupported_scheme:nosuch"


def test_fetch_images_fetches_each_distinct_uri_once_and_keeps_failures(
    images: Images, image_server: ImageServer
) -> None:
    ok = image_server.url("img/coffee.jpg")
    uris = [ok, ok, str(images.missing), image_server.url("img/gone.jpg")]
    before = len(image_server.requests)
    got = fetch_images(uris, CFG)
    assert list(got) == [ok, str(images.missing), image_server.url("img/gone.jpg")]
    assert got[ok] == images.coffee_jpg.read_bytes()
    assert len(image_server.requests) - before == 2  # ok once, gone once
    missing, gone = got[str(images.missing)], got[image_server.url("img/gone.jpg")]
    assert isinstance(missing, ImageError) and missing.reason == "not_found"
    assert isinstance(gone, ImageError) and gone.reason == "http_404"


def test_decoding_gives_rgb_and_names_corrupt_and_oversized_images(images: Images) -> None:
    gray = decode_image(images.camera_png.read_bytes(), max_pixels=10**8)
    assert gray.mode == "RGB" and gray.size == (512, 512)
    with pytest.raises(ImageError) as err:
        decode_image(images.corrupt_jpg.read_bytes(), max_pixels=10**8)
    assert err.value.reason == "corrupt"
    with pytest.raises(ImageError) as err:
        decode_image(images.coffee_jpg.read_bytes(), max_pixels=1000)
    assert err.value.reason == "too_many_pixels"
    truncated = images.coffee_jpg.read_bytes()[:5000]
    with pytest.raises(ImageError) as err:
        decode_image(truncated, max_pixels=10**8)
    assert err.value.reason == "corrupt"


def test_transparent_pixels_become_white() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(buf, format="PNG")
    assert decode_image(buf.getvalue(), max_pixels=100).getpixel((0, 0)) == (255, 255, 255)


def test_the_cache_key_is_the_hash_of_the_bytes_not_the_name(images: Images) -> None:
    assert image_sha256(images.coffee_jpg.read_bytes()) == image_sha256(
        images.coffee_copy_jpg.read_bytes()
    )
    assert image_sha256(images.coffee_jpg.read_bytes()) != image_sha256(
        images.chelsea_jpg.read_bytes()
    )


def test_resolve_image_uri_forms(tmp_path: Path) -> None:
    image = tmp_path / "a b.png"
    assert resolve_image_uri(str(image)) == image
    assert resolve_image_uri(image.as_uri()) == image
    assert resolve_image_uri("skimage://coffee.png").name == "coffee.png"
    for bad in ("skimage://../secrets", "skimage://", "https://example.com/x.png"):
        with pytest.raises(ValueError):
            resolve_image_uri(bad)
