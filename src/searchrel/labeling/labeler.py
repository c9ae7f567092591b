"""What a labeling backend is: the ``Labeler`` protocol the daily job drives.

A labeler turns (query, item text) pairs into K level probabilities. The job asks it for the
item texts it reads, the exact input it is given (hashed, so that unchanged pairs are copied
rather than relabeled) and the labels; a pair it could not label comes back with a reason and
is retried by the next run, never given a made-up label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Progress = Callable[[int], Any]


@dataclass
class LabelOutcome:
    """Per pair: K probabilities (a NaN row where it failed), the failure reason, attempts."""

    probs: np.ndarray
    failures: list[str | None]
    attempts: list[int]


class Labeler(Protocol):
    version: str  # names what made the labels (model and prompt): written with every row
    levels: int

    def item_texts(self, items: Sequence[Mapping[str, Any]]) -> list[str]: ...

    def input_text(self, query: str, text: str) -> str: ...

    def label(
        self, queries: Sequence[str], texts: Sequence[str], progress: Progress
    ) -> LabelOutcome: ...
