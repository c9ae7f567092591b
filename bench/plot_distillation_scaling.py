"""Plot bench/results/distillation_scaling.json to docs/img/distillation_scaling.png: student
accuracy against the amount of teacher-labeled data, beside the teacher and the ceiling.

.venv/bin/python bench/plot_distillation_scaling.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    result = json.loads((ROOT / "bench/results/distillation_scaling.json").read_text())
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
    for k, (metric, label) in enumerate(
        (("accuracy", "accuracy (4 levels)"), ("qwk", "quadratic weighted kappa"))
    ):
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
    out = ROOT / "docs" / "img" / "distillation_scaling.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
