"""Plot a result of bench/distillation_scaling.py.

* ``daily-log`` protocol (issue 17) -> docs/img/distillation_daily_log.png: the paper's figure,
  student accuracy and QWK against the number of teacher-labeled log pairs (log scale), one
  line per setting (daily, strict), the human-only student, the teacher and the label prior
  as horizontal references, the log-only students as single points; means over the folds
  run, bars one sd over folds (over seeds when one fold ran).
* ``human-fraction`` protocol (issue 5) -> docs/img/distillation_scaling.png: accuracy against
  the amount of teacher-labeled data, beside the teacher and the ceiling.

    .venv/bin/python bench/plot_distillation_scaling.py bench/results/distillation_daily_log.json
    .venv/bin/python bench/plot_distillation_scaling.py          # the human-fraction result
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
MIXED = re.compile(r"student: human \+ log \((\w+), N=(\d+)\)")
LOG_ONLY = re.compile(r"student: log only \((\w+), N=(\d+)\)")
METRICS = (("accuracy", "accuracy (4 levels)"), ("qwk", "quadratic weighted kappa"))
STYLE = {"daily": ("o-", "tab:blue"), "strict": ("s--", "tab:orange")}


def arm_stats(folds: list[dict[str, Any]], name: str, metric: str) -> tuple[float, float]:
    """Mean over folds of the arm's seed mean; sd over folds, or over seeds with one fold."""
    values = [f["results"][name][metric] for f in folds]
    if len(folds) > 1:
        return float(np.mean(values)), float(np.std(values, ddof=1))
    return float(values[0]), float(folds[0]["results"][name].get("sd", {}).get(metric) or 0.0)


def teacher_rows(folds: list[dict[str, Any]], name: str) -> float:
    return float(np.mean([f["results"][name]["rows_by_source"]["teacher"] for f in folds]))


def plot_daily_log(result: dict[str, Any], out: Path) -> None:
    folds = [f for f in result["folds"].values() if f.get("complete")]
    if not folds:
        raise SystemExit("no complete fold in the result: nothing to plot")
    names = [n for n in folds[0]["results"] if all(n in f["results"] for f in folds)]
    lines: dict[str, list[tuple[int, str]]] = {}
    points: list[tuple[str, str]] = []
    for name in names:
        if m := MIXED.fullmatch(name):
            lines.setdefault(m.group(1), []).append((int(m.group(2)), name))
        elif m := LOG_ONLY.fullmatch(name):
            points.append((m.group(1), name))
    prior = float(np.mean([f["split"]["test_prior_accuracy"] for f in folds]))
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    for k, (metric, label) in enumerate(METRICS):
        ax = fig.add_subplot(1, 2, k + 1)
        for setting, arms in sorted(lines.items()):
            arms.sort()
            xs = [teacher_rows(folds, n) for _, n in arms]
            stats = [arm_stats(folds, n, metric) for _, n in arms]
            style, color = STYLE.get(setting, ("o-", None))
            ax.errorbar(
                xs,
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                fmt=style,
                color=color,
                capsize=3,
                label=f"human + labeled log ({setting})",
            )
            for (n, _), x, (y, _) in zip(arms, xs, stats, strict=True):
                ax.annotate(
                    f"N={n}", (x, y), fontsize=7, xytext=(3, -10), textcoords="offset points"
                )
        for setting, name in points:
            y, err = arm_stats(folds, name, metric)
            ax.errorbar(
                [teacher_rows(folds, name)],
                [y],
                yerr=[err],
                fmt="x",
                color=STYLE.get(setting, ("", "black"))[1],
                capsize=3,
                label=f"teacher-labeled log only ({setting})",
            )
        refs = [
            ("student: human only", "human labels only", "-", "grey"),
            ("teacher", "teacher", "--", "black"),
        ]
        for key, text, style, color in refs:
            y, _ = arm_stats(folds, key, metric)
            ax.axhline(y, linestyle=style, color=color, linewidth=1, label=text)
        if metric == "accuracy":
            ax.axhline(prior, linestyle=":", color="grey", linewidth=1, label="label prior")
        ax.set_xscale("log")
        ax.set_xlabel("teacher-labeled pairs (log scale)")
        ax.set_ylabel(f"{label}, unseen queries")
    n_test = int(np.mean([f["split"]["test_pairs"] for f in folds]))
    n_seeds = len(folds[0]["results"]["student: human only"]["per_seed"]["accuracy"])
    fold_ids = ", ".join(str(f["fold"]) for f in folds)
    fig.suptitle(
        f"CrowdFlower, daily-log protocol: grouped fold(s) {fold_ids}, ~{n_test} test pairs per "
        f"fold; {n_seeds} student seeds each",
        fontsize=10,
    )
    handles, names = fig.axes[0].get_legend_handles_labels()  # the accuracy panel's: all lines
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)  # below
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(out, dpi=110)


def plot_human_fraction(result: dict[str, Any], out: Path) -> None:
    res = result["results"]
    mults = [(0.0, "student: human only")]
    for name in res:
        m = re.match(r"student: human \+ teacher (?:all \()?([\d.]+)x", name)
        if m:
            mults.append((float(m.group(1)), name))
    mults.sort()
    ceiling = "ceiling: student on human labels of 100% of training pairs"
    lines = [
        ("teacher", "teacher", "--"),
        ("student: teacher only", "student: teacher only", ":"),
        ("ceiling: human labels on 100%", ceiling, "-."),
    ]
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    split = result["split"]
    for k, (metric, label) in enumerate(METRICS):
        ax = fig.add_subplot(1, 2, k + 1)
        xs = [m for m, _ in mults]
        ax.plot(xs, [res[n][metric] for _, n in mults], "o-", label="student: human + teacher")
        for text, key, style in lines:
            ax.axhline(res[key][metric], linestyle=style, color="grey", linewidth=1)
            ax.annotate(text, (xs[-1], res[key][metric]), fontsize=7, ha="right", va="bottom")
        ax.set_xlabel("teacher-labeled pairs (multiples of the human-labeled pairs)")
        ax.set_ylabel(f"{label}, unseen queries")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"CrowdFlower: {split['human_pairs']} human labels, {split['unlabeled_pool_pairs']} "
        f"teacher-labeled, {split['test_pairs']} test pairs (grouped fold)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "result", type=Path, nargs="?", default=ROOT / "bench/results/distillation_scaling.json"
    )
    p.add_argument("--out", type=Path, help="the PNG (default: docs/img/, by protocol)")
    args = p.parse_args(argv)
    result = json.loads(args.result.read_text(encoding="utf-8"))
    daily = result.get("settings", {}).get("protocol") == "daily-log"
    name = "distillation_daily_log.png" if daily else "distillation_scaling.png"
    out = args.out or ROOT / "docs" / "img" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    (plot_daily_log if daily else plot_human_fraction)(result, out)
    print(out)


if __name__ == "__main__":
    main()
