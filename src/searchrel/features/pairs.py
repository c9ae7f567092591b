"""Features of (query, item) pairs: the one implementation used to train and to serve.

Per pair: query and item embeddings (their cosine and element-wise product are formed in
``assemble_inputs``), BM25 per text field, text-match signals and the item's engagement rates.
The order of the scalar features is ``schema.SCALAR_FEATURES``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from searchrel.config import FeatureConfig
from searchrel.features.embedder import Embedder
from searchrel.features.store import InlineItems, ItemStore
from searchrel.schema import SCALAR_FEATURES, TEXT_FIELDS_FOR_BM25
from searchrel.text import clean_text, tokenize


@dataclass
class PairFeatures:
    """Features of one query against several items (rows in the order the ids were given)."""

    query_embedding: np.ndarray  # (d,)
    item_embeddings: np.ndarray  # (n, d)
    scalars: np.ndarray  # (n, len(SCALAR_FEATURES))


def char_trigrams(text: str) -> set[str]:
    padded = f"  {text.lower()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class PairFeaturizer:
    def __init__(self, store: ItemStore | InlineItems, embedder: Embedder, cfg: FeatureConfig):
        if embedder.dim != store.dim:
            raise ValueError(f"embedder dim {embedder.dim} != item store dim {store.dim}")
        self.store, self.embedder, self.cfg = store, embedder, cfg

    def featurize(
        self, query: str, rows: np.ndarray, query_embedding: np.ndarray | None = None
    ) -> PairFeatures:
        """Features of `query` against the store rows `rows` (see ``ItemStore.rows_of``)."""
        q_clean = clean_text(query)
        q_terms = tokenize(q_clean)
        q_set = set(q_terms)
        q_lower = q_clean.lower()
        q_grams = char_trigrams(q_clean)
        qvec = self.embedder.encode_query(q_clean) if query_embedding is None else query_embedding
        ivecs = self.store.embeddings[rows]
        n = len(rows)
        out = np.zeros((n, len(SCALAR_FEATURES)), dtype=np.float32)
        col = {name: i for i, name in enumerate(SCALAR_FEATURES)}
        out[:, col["cosine"]] = ivecs @ qvec
        k1, b = self.cfg.bm25_k1, self.cfg.bm25_b
        bm25_all = np.zeros(n, dtype=np.float32)
        covered_any = np.zeros((n, len(q_set)), dtype=bool)
        terms = sorted(q_set)
        for name in TEXT_FIELDS_FOR_BM25:
            stats = self.store.bm25[name]
            idf = {t: stats.idf(t) for t in terms}
            counts = self.store.term_counts[name]
            lengths = self.store.lengths[name][rows]
            norm = k1 * (1 - b + b * lengths / max(stats.avgdl, 1e-6))
            scores = np.zeros(n, dtype=np.float32)
            for j, r in enumerate(rows):
                c = counts[r]
                s = 0.0
                for t_i, t in enumerate(terms):
                    tf = c.get(t, 0)
                    if tf:
                        s += idf[t] * tf * (k1 + 1) / (tf + norm[j])
                        covered_any[j, t_i] = True
                        if name == "title":
                            out[j, col["term_coverage_title"]] += 1.0
                scores[j] = s
            out[:, col[f"bm25_{name}"]] = scores
            bm25_all += scores
        out[:, col["bm25_all"]] = bm25_all
        if q_set:
            out[:, col["term_coverage_title"]] /= len(q_set)
            out[:, col["term_coverage_all"]] = covered_any.mean(axis=1)
        for j, r in enumerate(rows):
            title = self.store.title_text[r]
            out[j, col["exact_phrase_title"]] = float(bool(q_lower) and q_lower in title)
            out[j, col["exact_phrase_all"]] = float(
                bool(q_lower) and q_lower in self.store.all_text[r]
            )
            out[j, col["fuzzy_title"]] = jaccard(q_grams, char_trigrams(title))
        out[:, col["query_length"]] = math.log1p(len(q_terms))
        eng = self.store.engagement[rows]
        for k, name in enumerate(
            ("item_click_rate", "item_save_rate", "item_closeup_rate", "item_log_impressions")
        ):
            out[:, col[name]] = eng[:, k]
        return PairFeatures(query_embedding=qvec, item_embeddings=ivecs, scalars=out)

    def featurize_many(
        self, queries: Sequence[str], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch form for training: pairs (queries[i], rows[i]), grouped by query internally."""
        unique = sorted(set(queries))
        qvecs = dict(
            zip(unique, self.embedder.encode([clean_text(q) for q in unique]), strict=True)
        )
        n = len(queries)
        q_out = np.zeros((n, self.store.dim), dtype=np.float32)
        i_out = np.zeros((n, self.store.dim), dtype=np.float32)
        s_out = np.zeros((n, len(SCALAR_FEATURES)), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            f = self.featurize(q, rows[idx], query_embedding=qvecs[q])
            q_out[idx] = f.query_embedding
            i_out[idx] = f.item_embeddings
            s_out[idx] = f.scalars
        return q_out, i_out, s_out


def assemble_inputs(
    query_embeddings: np.ndarray, item_embeddings: np.ndarray, scalars: np.ndarray
) -> np.ndarray:
    """The student's input row: [q, i, q*i, scalars]; q may be (d,) for one query or (n, d)."""
    q = np.broadcast_to(query_embeddings, item_embeddings.shape)
    return np.concatenate([q, item_embeddings, q * item_embeddings, scalars], axis=1).astype(
        np.float32, copy=False
    )
