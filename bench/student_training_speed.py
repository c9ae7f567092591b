"""Student training speed from arrays (issue 5): rows per second of one epoch.

    .venv/bin/python bench/student_training_speed.py --rows 1000000

Random inputs of the real student's width (3 x 384 embedding dims + the scalar features) and
random soft targets; the default StudentConfig network, batch and optimizer, through the same
``fit_student`` the pipeline uses (one epoch, then the validation pass). Goal: 1 million rows
per epoch in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from searchrel.config import StudentConfig  # noqa: E402
from searchrel.schema import SCALAR_FEATURES  # noqa: E402
from searchrel.student.dataset import FeatureRows  # noqa: E402
from searchrel.student.train import fit_student  # noqa: E402

DIM, K = 384, 5


def rows(n: int, rng: np.random.Generator, source: str) -> FeatureRows:
    width = 3 * DIM + len(SCALAR_FEATURES)
    x = rng.standard_normal((n, width), dtype=np.float32)
    target = rng.dirichlet(np.ones(K), size=n).astype(np.float32)
    empty = np.empty(n, dtype=object)
    return FeatureRows(x, target, np.ones(n, np.float32), np.full(n, source, dtype=object),
                       empty, empty, empty, empty, DIM)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/student_training_speed.json")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    train, val = rows(args.rows, rng, "teacher"), rows(10_000, rng, "human")
    cfg = StudentConfig(epochs=1)
    started = time.perf_counter()
    _, history, _ = fit_student(train, val, cfg, K)
    seconds = time.perf_counter() - started
    result = {
        "command": "python bench/student_training_speed.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "rows": args.rows,
        "input_width": int(train.x.shape[1]),
        "student": cfg.model_dump(),
        "epoch_seconds": round(seconds, 2),
        "rows_per_second": round(args.rows / seconds),
        "goal_1m_rows_under_60s": args.rows / seconds * 60 >= 1_000_000,
        "history": history,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("rows", "epoch_seconds", "rows_per_second")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
