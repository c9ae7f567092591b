"""Plot bench/results/demo_loop.json (teacher vs student on the sample) to docs/img/demo_loop.png.

.venv/bin/python bench/plot_demo_loop.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("accuracy", "auroc_ge_3", "auroc_ge_4", "auroc_ge_5", "qwk", "ndcg_at_20")


def main() -> None:
    result = json.loads((ROOT / "bench" / "results" / "demo_loop.json").read_text())
    fig = Figure(figsize=(8, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(METRICS))
    for offset, role in ((-0.2, "teacher"), (0.2, "student")):
        values = [result[role][m] or 0.0 for m in METRICS]
        bars = ax.bar(x + offset, values, width=0.4, label=role)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, METRICS)
    ax.set_ylim(0, 1.08)
    ax.set_title(f"make demo: held-out sample queries (n={result['teacher']['n']} pairs)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "demo_loop.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
