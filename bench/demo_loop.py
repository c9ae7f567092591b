"""Time the whole local loop (`make demo`) and record its figures in bench/results/demo_loop.json.

    .venv/bin/python bench/demo_loop.py

Stage times come from the steps' own summaries; the quality figures are the teacher's and
the student's on the sample's held-out queries (small: a few dozen pairs, so read them as a
smoke check of the loop, not as a quality benchmark — CrowdFlower benchmarks are separate).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from searchrel.demo import run_demo  # noqa: E402

KEYS = ("n", "accuracy", "auroc_ge_3", "auroc_ge_4", "auroc_ge_5", "qwk", "ndcg_at_20")


def main() -> None:
    out = ROOT / "runs" / "bench_demo"
    summary = run_demo(out, ROOT / "configs" / "local.yaml")
    result = {
        "command": "python bench/demo_loop.py",
        "machine": machine_info(),
        "total_seconds": summary["seconds"],
        "pipeline_seconds": summary["pipeline"]["seconds"],
        "teacher": {k: summary["teacher"].get(k) for k in KEYS},
        "student": {k: summary["student"].get(k) for k in KEYS},
        "student_vs_teacher_accuracy": summary["student_vs_teacher_accuracy"],
        "serving": {
            k: summary["serving"][k]
            for k in ("requests", "queries", "candidates", "status_counts", "latency_ms")
        },
        "drift": {
            k: summary["drift"].get(k)
            for k in ("drift_detected", "drift_share", "current_rows", "reference_rows")
        },
        "daily": {k: summary["daily"][k] for k in ("gate", "deployed", "commit", "seconds")},
    }
    path = ROOT / "bench" / "results" / "demo_loop.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main()
