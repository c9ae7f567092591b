"""PNG plots of one model's evaluation (the dict from ``searchrel.metrics.evaluate``).

Three figures, written by ``write_plots``:

* ``confusion_matrix.png``: heatmap of counts, rows = true level, columns = predicted level
  (the orientation of ``metrics.confusion_matrix``), each cell annotated with its count and
  its share of the row.
* ``roc_curves.png``: one ROC curve per binarisation ``label >= t`` (``t = 2..K``), scored by
  ``P(label >= t)`` exactly as ``evaluate``'s ``auroc_ge_t``; a threshold with one class only
  has no curve and says so in the legend.
* ``precision_at_{k}_by_locale.png``: bar per locale of mean precision@k, with query counts.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so nothing here needs a
display or changes matplotlib's global backend, and concurrent callers cannot share state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from searchrel import metrics

CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc_curves.png"
DPI = 120


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas: render with Agg, whatever the backend
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _suffix(title: str | None) -> str:
    return f" — {title}" if title else ""


def plot_confusion_matrix(result: Mapping[str, Any], path: Path, title: str | None = None) -> Path:
    """Heatmap of ``result["confusion_matrix"]`` (rows = true level) written to ``path``."""
    cm = np.asarray(result["confusion_matrix"], dtype=np.int64)
    levels = cm.shape[0]
    row_totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, row_totals, out=np.zeros(cm.shape), where=row_totals > 0)
    fig = Figure(figsize=(1.2 * levels + 2.5, 1.0 * levels + 2.0), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, label="count")
    ticks = np.arange(levels)
    ax.set_xticks(ticks, [str(t + 1) for t in ticks])
    ax.set_yticks(ticks, [str(t + 1) for t in ticks])
    ax.set_xlabel("predicted level")
    ax.set_ylabel("true level")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(levels):
        for j in range(levels):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_title(f"Confusion matrix (n={int(cm.sum())}){_suffix(title)}")
    return _save(fig, path)


def plot_roc_curves(
    result: Mapping[str, Any],
    y_true: ArrayLike,
    probs: ArrayLike,
    path: Path,
    title: str | None = None,
) -> Path:
    """ROC curve per threshold ``label >= t``, ``t = 2..K``, scored by ``P(label >= t)``."""
    levels = int(result["levels"])
    labels = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (0.5)")
    for t in range(2, levels + 1):
        curve = metrics.roc_curve(labels >= t, metrics.prob_at_least(p, t))
        if curve is None:
            ax.plot([], [], linestyle="none", label=f"label ≥ {t}: one class only, no curve")
            continue
        auc = result.get(f"auroc_ge_{t}")
        auc_text = f"{auc:.3f}" if isinstance(auc, float) else "n/a"
        ax.plot(curve.fpr, curve.tpr, label=f"label ≥ {t}: AUC {auc_text}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"ROC per binarisation{_suffix(title)}")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _precision_key(result: Mapping[str, Any]) -> str:
    keys = [
        k
        for k, v in result.items()
        if k.startswith("precision_at_") and not k.endswith("_queries") and isinstance(v, Mapping)
    ]
    if len(keys) != 1:
        raise ValueError(f"expected one precision_at_<k> mapping in the result, found {keys}")
    return keys[0]


def plot_precision_by_locale(
    result: Mapping[str, Any], path: Path, title: str | None = None
) -> Path:
    """Bar per locale of ``result["precision_at_<k>"]``, annotated with value and query count."""
    key = _precision_key(result)
    by_locale: Mapping[str, float] = result[key]
    counts: Mapping[str, int] = result.get(f"{key}_queries", {})
    locales = sorted(by_locale)
    values = [float(by_locale[loc]) for loc in locales]
    fig = Figure(figsize=(max(4.0, 0.9 * len(locales) + 2.0), 4.0), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(locales, values, color="tab:blue")
    for bar, loc, value in zip(bars, locales, values, strict=True):
        n = counts.get(loc)
        note = f"{value:.3f}" + (f"\n{n} q" if n is not None else "")
        ax.annotate(
            note,
            (bar.get_x() + bar.get_width() / 2, value),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    k = key.removeprefix("precision_at_")
    level = result.get("relevant_level")
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("locale")
    ax.set_ylabel(f"mean precision@{k}" + (f" (relevant: label ≥ {level})" if level else ""))
    ax.set_title(f"Precision@{k} by locale{_suffix(title)}")
    return _save(fig, path)


def write_plots(
    result: Mapping[str, Any],
    y_true: ArrayLike,
    probs: ArrayLike,
    out_dir: Path,
    *,
    title: str | None = None,
) -> list[Path]:
    """Write the three evaluation PNGs for ``result`` into ``out_dir``; return their paths.

    ``result`` is ``metrics.evaluate(y_true, probs, ...)`` and ``y_true`` / ``probs`` must be
    the very arrays it was computed from (the ROC curves need the per-row scores, which the
    JSON result does not keep); a length or level mismatch raises ``ValueError``. ``title``
    (e.g. "teacher v3, test split") is appended to every figure's title.
    """
    levels = int(result["levels"])
    labels = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1 or labels.size != int(result["n"]) or p.shape != (labels.size, levels):
        raise ValueError(
            f"y_true {labels.shape} / probs {p.shape} do not match the result "
            f"(n={result['n']}, levels={levels})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    key = _precision_key(result)
    return [
        plot_confusion_matrix(result, out_dir / CONFUSION_PNG, title),
        plot_roc_curves(result, labels, p, out_dir / ROC_PNG, title),
        plot_precision_by_locale(result, out_dir / f"{key}_by_locale.png", title),
    ]


__all__ = [
    "CONFUSION_PNG",
    "ROC_PNG",
    "plot_confusion_matrix",
    "plot_precision_by_locale",
    "plot_roc_curves",
    "write_plots",
]
