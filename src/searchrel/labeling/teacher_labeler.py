"""The fine-tuned teacher (one, or an ensemble) as a labeler: the cross-encoder scoring on this
machine (CPU or GPU)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from searchrel.config import Config
from searchrel.labeling.labeler import LabelOutcome, Progress
from searchrel.labeling.threads import configure_torch_threads
from searchrel.text import clean_text


class TeacherLabeler:
    """A saved teacher or ensemble directory; implements the labeler protocol."""

    def __init__(self, teacher_dir: Path, cfg: Config):
        from searchrel.teacher.ensemble import load_scorer

        self.threads = configure_torch_threads(cfg.label.threads)  # 0: the CPUs it may use
        precision = None if cfg.label.precision == "auto" else cfg.label.precision
        self.scorer = load_scorer(
            teacher_dir, precision=precision, attn_implementation=cfg.teacher.attn_implementation
        )
        self.version = self.scorer.version
        self.levels = self.scorer.meta.levels
        self.batch_size = cfg.teacher.label_batch_size
        self.batch_tokens = cfg.teacher.label_batch_tokens

    def item_texts(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        return self.scorer.item_texts(items)

    def input_text(self, query: str, text: str) -> str:
        # What the tokenizer is given, and the length it is cut to.
        return f"{self.scorer.meta.max_length}\x1f{clean_text(query)}\x1f{text}"

    def label(
        self, queries: Sequence[str], texts: Sequence[str], progress: Progress
    ) -> LabelOutcome:
        probs = self.scorer.predict_proba(
            queries, texts, self.batch_size, progress=progress, max_batch_tokens=self.batch_tokens
        )
        probs = probs / probs.sum(axis=1, keepdims=True)  # exact normalisation after softmax
        return LabelOutcome(probs, [None] * len(queries), [1] * len(queries))
