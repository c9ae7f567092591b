"""Features of (query, item) pairs: the one implementation used to train and to serve.

Per pair: query and item embeddings (their cosine and element-wise product are formed in
``assemble_inputs``), BM25 per text field, text-match signals and the item's engagement rates.
The order of the scalar features is ``schema.SCALAR_FEATURES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

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


Key = tuple[str, str]  # (BM25 field, term), or (TRIGRAM, a title's character trigram)
TRIGRAM = "#trigram"


def _count_matrix(docs: Sequence[Mapping[Key, int]]) -> tuple[sparse.csr_matrix, dict[Key, int]]:
    """Documents' key counts as a sparse (document x key) matrix, and key -> column."""
    columns: dict[Key, int] = {}
    indices: list[int] = []
    counts: list[int] = []
    indptr = [0]
    for doc in docs:
        for key, count in doc.items():
            indices.append(columns.setdefault(key, len(columns)))
            counts.append(count)
        indptr.append(len(indices))
    matrix = sparse.csr_matrix(
        (np.array(counts, np.int64), np.array(indices, np.int64), np.array(indptr, np.int64)),
        shape=(len(docs), max(len(columns), 1)),
    )
    return matrix, columns


class PairFeaturizer:
    def __init__(self, store: ItemStore | InlineItems, embedder: Embedder, cfg: FeatureConfig):
        if embedder.dim != store.dim:
            raise ValueError(f"embedder dim {embedder.dim} != item store dim {store.dim}")
        self.store, self.embedder, self.cfg = store, embedder, cfg
        # Once per store, as sparse item x term matrices: the term counts of each BM25 field
        # and each title's character trigrams. A request then takes its candidates' rows and
        # its query's columns in one step, where a loop over candidates and terms cost most of
        # a 1,000-candidate request. The arithmetic is unchanged (the same floats, to the bit).
        # One matrix for all of them: one row selection per request.
        docs: list[dict[Key, int]] = [
            {(TRIGRAM, g): 1 for g in char_trigrams(t)} for t in store.title_text
        ]
        for name in TEXT_FIELDS_FOR_BM25:
            for doc, counts in zip(docs, store.term_counts[name], strict=True):
                doc.update({(name, t): c for t, c in counts.items()})
        self._title_grams = np.array([len(char_trigrams(t)) for t in store.title_text], np.int64)
        self._counts, self._columns = _count_matrix(docs)

    def _pick(self, rows: np.ndarray, keys: Sequence[Key]) -> np.ndarray:
        """Counts of ``keys`` (a key no item has: 0) in the items ``rows``, (n, keys)."""
        out = np.zeros((len(rows), len(keys)), dtype=np.int64)
        known = [(j, self._columns[k]) for j, k in enumerate(keys) if k in self._columns]
        if known and len(rows):
            picked = self._counts[rows][:, [c for _, c in known]].toarray()
            out[:, [j for j, _ in known]] = picked
        return out

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
        grams = sorted(q_grams)
        keys = [(name, t) for name in TEXT_FIELDS_FOR_BM25 for t in terms]
        found = self._pick(rows, [*keys, *((TRIGRAM, g) for g in grams)])
        row_list = rows.tolist()
        for name in TEXT_FIELDS_FOR_BM25:
            stats = self.store.bm25[name]
            first = TEXT_FIELDS_FOR_BM25.index(name) * len(terms)
            tfs = found[:, first : first + len(terms)]
            lengths = self.store.lengths[name][rows]
            norm = k1 * (1 - b + b * lengths / max(stats.avgdl, 1e-6))  # float32
            scores = np.zeros(n, dtype=np.float32)
            # Term by term over all candidates, in float32 as the per-pair sum always was:
            # idf * tf * (k1 + 1) in float64, then rounded, divided and summed in float32.
            for t_i, t in enumerate(terms):
                tf = tfs[:, t_i]
                hit = tf > 0
                if not hit.any():
                    continue
                tf_hit = tf[hit]
                num = (stats.idf(t) * tf_hit * (k1 + 1)).astype(np.float32)
                scores[hit] += num / (tf_hit.astype(np.float32) + norm[hit])
                covered_any[hit, t_i] = True
                if name == "title":
                    out[hit, col["term_coverage_title"]] += 1.0
            out[:, col[f"bm25_{name}"]] = scores
            bm25_all += scores
        out[:, col["bm25_all"]] = bm25_all
        if q_set:
            out[:, col["term_coverage_title"]] /= len(q_set)
            out[:, col["term_coverage_all"]] = covered_any.mean(axis=1)
        if q_lower:
            title_text, all_text = self.store.title_text, self.store.all_text
            out[:, col["exact_phrase_title"]] = [q_lower in title_text[r] for r in row_list]
            out[:, col["exact_phrase_all"]] = [q_lower in all_text[r] for r in row_list]
        shared = found[:, len(keys) :].sum(axis=1)  # trigrams the title shares with the query
        union = len(q_grams) + self._title_grams[rows] - shared
        out[:, col["fuzzy_title"]] = np.where(union > 0, shared / np.maximum(union, 1), 0.0)
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
