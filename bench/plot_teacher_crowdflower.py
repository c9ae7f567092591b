"""Plot bench/results/teacher_crowdflower.json to docs/img/teacher_crowdflower.png.

    .venv/bin/python bench/plot_teacher_crowdflower.py [--json PATH] [--out PATH] [--folds 0]

One panel per protocol (grouped: unseen test queries; random: seen, as on Kaggle); in each,
grouped bars of every model's mean over the folds per metric, with the std over folds as error
bars. ``qwk_cutoffs`` reads the expected score through cutoffs fitted on the validation
queries. The dashed ticks on both QWKs are the 2015 Kaggle winner and best single model
(test queries seen in training, so comparable with the random protocol only). ``--folds``
plots only those folds (e.g. fold 0, where every configuration ran), summarised again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.* when run as a script
METRICS = ("accuracy", "auroc_ge_2", "auroc_ge_3", "auroc_ge_4", "qwk", "qwk_cutoffs", "ndcg_at_20")


def plot(result: dict, out: Path, only: list[str] | None = None) -> Path:
    protocols = [p for p, block in result["protocols"].items() if block.get("folds")]  # ran
    fig = Figure(figsize=(10, 3.4 * len(protocols)))
    FigureCanvasAgg(fig)
    kaggle = result["references"]["kaggle_2015_crowdflower"]
    x = np.arange(len(METRICS))
    for row, protocol in enumerate(protocols):
        block = result["protocols"][protocol]
        summary = block.get("summary", {})
        listed = [m for m in result["settings"]["models"] if m in summary]
        models = listed + [m for m in summary if m not in listed]  # rows of resumed runs
        if only:  # e.g. the rows that ran on every fold, in the order given
            models = [m for m in only if m in summary]
        ax = fig.add_subplot(len(protocols), 1, row + 1)
        width = 0.8 / max(len(models), 1)
        cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]  # a colour per row
        for k, model in enumerate(models):
            means = [summary[model][m]["mean"] or 0.0 for m in METRICS]
            stds = [summary[model][m]["std"] for m in METRICS]
            yerr = None if all(v is None for v in stds) else [v or 0.0 for v in stds]
            offset = (k - (len(models) - 1) / 2) * width
            bars = ax.bar(x + offset, means, width=width, yerr=yerr, capsize=2, label=model,
                          color=cmap(k % cmap.N))  # fmt: skip
            if len(models) <= 7:  # more and the figures overlap; the tables carry them
                ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        for q in (METRICS.index("qwk"), METRICS.index("qwk_cutoffs")):
            for value, style in (
                (kaggle["winner_qwk"], "--"),
                (kaggle["best_single_model_qwk"], ":"),
            ):
                ax.hlines(value, q - 0.45, q + 0.45, colors="k", linestyles=style, linewidth=1)
        folds = len(block["folds"])
        n = sum(f["test_pairs"] for f in block["folds"])
        ax.set_title(
            f"CrowdFlower, {protocol} folds ({folds} of 5 run, {n} test pairs; "
            f"mean ± std over folds; QWK ticks: Kaggle 2015 winner / best single)",
            fontsize=9,
        )
        ax.set_xticks(x, METRICS)
        ax.set_ylim(0, 1.12)
        ax.legend(loc="upper left", fontsize=7, ncol=min(len(models), 6))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "teacher_crowdflower.json"
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "teacher_crowdflower.png")
    p.add_argument(
        "--add",
        nargs=2,
        action="append",
        default=[],
        metavar=("JSON", "SUFFIX"),
        help="models of another run on the same folds, shown as MODEL+SUFFIX",
    )
    p.add_argument("--models", nargs="+", help="plot only these rows (default: every row)")
    p.add_argument("--folds", type=int, nargs="+", help="plot only these folds (default: all)")
    args = p.parse_args()
    result = json.loads(args.json.read_text(encoding="utf-8"))
    if args.folds is not None:
        only_folds(result, set(args.folds))
    for path, suffix in args.add:
        add_models(result, json.loads(Path(path).read_text(encoding="utf-8")), suffix)
    print(plot(result, args.out, args.models))


def only_folds(result: dict, folds: set[int]) -> None:
    """Keep only ``folds`` of every protocol, and summarise each again over what is left."""
    from bench.teacher_crowdflower import summarize  # the bench's own means and stds

    for block in result["protocols"].values():
        block["folds"] = [f for f in block.get("folds", []) if f["fold"] in folds]
        names = sorted({name for f in block["folds"] for name in f["models"]})
        block["summary"] = summarize(block["folds"], names)


def add_models(result: dict, other: dict, suffix: str) -> None:
    """Put ``other``'s models for the protocols both ran beside ``result``'s, renamed."""
    for protocol, block in other["protocols"].items():
        if not block.get("summary"):
            continue
        mine = result["protocols"].setdefault(protocol, {})
        if not mine.get("summary"):  # a protocol only the other run has: take it whole
            mine.update(folds=block["folds"], summary={})
            for model in ("prior", "bm25", "embedding"):
                if model in block["summary"]:
                    mine["summary"][model] = block["summary"][model]
        for model, figures in block["summary"].items():
            if model in ("prior", "bm25", "embedding"):
                continue  # the same baselines on the same fold: keep one copy
            mine["summary"][model + suffix] = figures
            if model + suffix not in result["settings"]["models"]:
                result["settings"]["models"].append(model + suffix)


if __name__ == "__main__":
    main()
