"""The pipeline definitions (components/, pipelines/) are repository code, not library code:
the runtime image needs only `searchrel`. Commands that build pipelines find the checkout."""

from __future__ import annotations

import sys
from pathlib import Path


class NotACheckoutError(RuntimeError):
    """Pipeline commands were run from an installed wheel, away from the repository."""


def repository_root() -> Path:
    """The checkout that holds this source tree (src/searchrel -> the repository)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pipelines" / "relevance_loop.py").is_file():
        raise NotACheckoutError(
            "the pipeline definitions live in the searchrel repository (pipelines/, "
            "components/); run this command from a checkout with `pip install -e .`"
        )
    return root


def ensure_pipelines_importable() -> None:
    root = str(repository_root())
    if root not in sys.path:
        sys.path.insert(0, root)
