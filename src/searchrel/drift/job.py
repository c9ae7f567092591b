"""The drift job: read the training rows and the served-request log, run the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from searchrel.config import Config
from searchrel.drift.decide import STATE_FILE, decide
from searchrel.drift.prometheus import export_drift_metrics
from searchrel.drift.report import run_drift
from searchrel.request_log import read_request_log
from searchrel.tables import read_table, write_quarantine


def drift_job(
    reference_path: Path,
    requests_dir: Path,
    out_dir: Path,
    cfg: Config,
    state_path: Path | None = None,
) -> dict[str, Any]:
    """The verdict, its Prometheus metrics (``drift.prom``) and the relabel decision."""
    levels = cfg.data.levels
    reference = read_table(reference_path, "student_features", levels)
    current = read_request_log(requests_dir, levels)
    if current.quarantine.num_rows:
        write_quarantine(current.quarantine, out_dir / "request_log_quarantine.parquet")
    verdict = run_drift(reference.table, current.table, cfg.drift, out_dir)
    verdict["request_log"] = current.summary()
    verdict["prometheus"] = export_drift_metrics(verdict, out_dir, cfg.drift.pushgateway)
    verdict["decision"] = decide(verdict, cfg.drift, state_path or out_dir / STATE_FILE)
    (out_dir / "drift.json").write_text(
        json.dumps(verdict, indent=2, default=str), encoding="utf-8"
    )
    return verdict


if __name__ == "__main__":
    from searchrel.cli import module_main

    module_main("drift")
