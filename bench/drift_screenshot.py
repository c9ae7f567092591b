"""The drift dashboard as a picture: the Evidently report of a drifted window, rendered by
headless Chromium into docs/img/drift_report.png.

    .venv/bin/python bench/drift_screenshot.py [--features runs/demo/.../student_features.parquet]

The reference is the student's training rows of the newest `make demo` run; the window is the
same rows with their query embeddings replaced and their scalar features scaled and moved, so
the report has something to show. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from searchrel.config import DriftConfig  # noqa: E402
from searchrel.drift.report import REPORT_HTML, run_drift  # noqa: E402
from searchrel.schema import SCALAR_FEATURES  # noqa: E402


def shifted_window(reference: pa.Table, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(reference.num_rows, len(reference.column("query_embedding")[0])))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    probs = np.asarray(reference.column("target").to_pylist(), dtype=np.float32)
    cols = {
        "query": reference.column("query"),
        "locale": reference.column("locale"),
        "query_embedding": pa.array(q.astype(np.float32).tolist()),
        "expected_score": (probs * np.arange(1, probs.shape[1] + 1)).sum(axis=1) + 0.5,
        **{n: reference.column(n).to_numpy() * 1.5 + 0.5 for n in SCALAR_FEATURES},
    }
    return pa.table(cols)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--features", type=Path, help="student_features.parquet (default: newest demo)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "drift_report.png")
    args = p.parse_args()
    features = (
        args.features
        or sorted(
            (ROOT / "runs" / "demo" / "pipeline").glob(
                "*/build-features/features/student_features.parquet"
            )
        )[-1]
    )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    reference = pq.read_table(features)
    with tempfile.TemporaryDirectory() as tmp:
        verdict = run_drift(reference, shifted_window(reference), DriftConfig(), Path(tmp))
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp}/profile",
                "--virtual-time-budget=15000",
                "--window-size=1400,2000",
                f"--screenshot={args.out}",
                f"file://{Path(tmp) / REPORT_HTML}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    share = verdict.details["drift_share"]
    print(args.out, "drift_detected:", verdict.drift_detected, "share:", share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
