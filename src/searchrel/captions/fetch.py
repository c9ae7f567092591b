"""Image bytes from wherever an item's ``image_uri`` points, with a reason for every failure.

Local paths (``/x.jpg``, ``file://``, and ``skimage://NAME`` for the sample's images), http(s)
(one timeout from connect to last byte, a size limit checked on the header and while reading)
and any fsspec filesystem (``s3://`` with s3fs, ``gs://`` with gcsfs, ``memory://``). A file
larger than ``max_image_bytes`` is never read whole. An image that cannot be had raises
``ImageError`` with a short reason (``not_found``, ``too_large``, ``timeout``, ``http_404``,
``corrupt`` ...) that the job records; the run goes on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from searchrel.config import CaptionConfig

if TYPE_CHECKING:
    from PIL.Image import Image

HTTP_SCHEMES = ("http", "https")
LOCAL_SCHEMES = ("", "file", "skimage")
USER_AGENT = "searchrel-captions"


class ImageError(Exception):
    """An image that could not be fetched or decoded; ``reason`` is what the job records."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def image_sha256(data: bytes) -> str:
    """The cache key of an image: the hash of its bytes, wherever they came from."""
    return hashlib.sha256(data).hexdigest()


def scheme_of(uri: str) -> str:
    scheme = urlparse(uri).scheme.lower()
    return "" if len(scheme) == 1 else scheme  # one letter: a Windows drive, a plain path


def resolve_image_uri(uri: str) -> Path:
    """The local file of an image URI: ``skimage://NAME`` (an image shipped with
    scikit-image), ``file://PATH`` or a plain path. Other schemes are not local: ValueError."""
    parsed = urlparse(uri)
    if parsed.scheme == "skimage":
        name = (parsed.netloc + parsed.path).strip("/")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"not a scikit-image data file name: {uri!r}")
        return _skimage_data_dir() / name
    if parsed.scheme == "file":
        return Path(unquote(parsed.netloc + parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, a plain path
        raise ValueError(f"not a local image URI: {uri!r}")
    return Path(uri)


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")  # no import: skimage is slow to import
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed; skimage:// images need it")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_local(uri: str, max_bytes: int) -> bytes:
    try:
        path = resolve_image_uri(uri)
    except (ValueError, FileNotFoundError) as exc:
        raise ImageError("bad_uri") from exc
    if not path.is_file():
        raise ImageError("not_found")
    if path.stat().st_size > max_bytes:
        raise ImageError("too_large")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"read_error:{type(exc).__name__}") from exc


def read_http(uri: str, max_bytes: int, timeout_s: float, client: Any) -> bytes:
    """GET with a deadline over the whole transfer (a server trickling bytes cannot stall us)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    try:
        with client.stream("GET", uri) as response:
            if response.status_code != 200:
                raise ImageError(f"http_{response.status_code}")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise ImageError("too_large")
            buf = bytearray()
            for chunk in response.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise ImageError("too_large")
                if time.monotonic() > deadline:
                    raise ImageError("timeout")
            return bytes(buf)
    except httpx.TimeoutException as exc:
        raise ImageError("timeout") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ImageError("bad_uri") from exc
    except httpx.HTTPError as exc:
        raise ImageError("connection_error") from exc


def read_fsspec(uri: str, max_bytes: int) -> bytes:
    """s3://, gs://, memory:// ... through fsspec (its filesystem package must be installed)."""
    import fsspec

    scheme = scheme_of(uri)
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # a known protocol whose package is missing (s3fs, gcsfs)
        raise ImageError(f"no_filesystem:{scheme}") from exc
    except ValueError as exc:
        raise ImageError(f"unsupported_scheme:{scheme}") from exc
    try:
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise ImageError("too_large")
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ImageError("not_found") from exc
    except TimeoutError as exc:
        raise ImageError("timeout") from exc
    except OSError as exc:
        raise ImageError(f"read_error:{type(exc).__name__}") from exc
    if len(data) > max_bytes:
        raise ImageError("too_large")
    return data


def read_image_bytes(uri: str, cfg: CaptionConfig, client: Any = None) -> bytes:
    """The bytes of one image, or ``ImageError`` with the reason they cannot be had."""
    uri = uri.strip()
    if not uri:
        raise ImageError("bad_uri")
    scheme = scheme_of(uri)
    if scheme in LOCAL_SCHEMES:
        return read_local(uri, cfg.max_image_bytes)
    if scheme in HTTP_SCHEMES:
        if client is None:
            with http_client(cfg) as own:
                return read_http(uri, cfg.max_image_bytes, cfg.http_timeout_s, own)
        return read_http(uri, cfg.max_image_bytes, cfg.http_timeout_s, client)
    return read_fsspec(uri, cfg.max_image_bytes)


def http_client(cfg: CaptionConfig) -> Any:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(cfg.http_timeout_s),
        follow_redirects=True,
        headers={"user-agent": USER_AGENT},
    )


def fetch_images(
    uris: Sequence[str], cfg: CaptionConfig, done: Callable[[str], Any] | None = None
) -> dict[str, bytes | ImageError]:
    """Each distinct URI's bytes or its ``ImageError``; ``fetch_workers`` downloads at once."""
    distinct = list(dict.fromkeys(uris))
    with http_client(cfg) as client:

        def one(uri: str) -> bytes | ImageError:
            try:
                return read_image_bytes(uri, cfg, client)
            except ImageError as exc:
                return exc
            finally:
                if done is not None:
                    done(uri)

        with ThreadPoolExecutor(max_workers=cfg.fetch_workers) as pool:
            return dict(zip(distinct, pool.map(one, distinct), strict=True))


def decode_image(data: bytes, max_pixels: int) -> Image:
    """An RGB image (EXIF orientation applied, transparency on white), or ``ImageError``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours is below
            opened = Image.open(io.BytesIO(data))
            width, height = opened.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise ImageError("too_many_pixels")
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise ImageError("too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError("corrupt") from exc
