"""Writing one model's evaluation where KFP (and people) read it: JSON, markdown and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from searchrel import metrics
from searchrel.plots import write_plots


def write_evaluation(
    result: dict[str, Any], y_true: np.ndarray, probs: np.ndarray, out_dir: Path, title: str
) -> None:
    """metrics.json, metrics.md and the PNG plots of ``result`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out_dir / "metrics.md").write_text(metrics.to_markdown(result), encoding="utf-8")
    write_plots(result, y_true, probs, out_dir, title=title)
