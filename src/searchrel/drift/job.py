"""The drift job: read the training rows and the served-request log, run the report, export
its metrics, decide, and write ``drift.json`` (once, atomically: a reader never sees half)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from searchrel.atomic_files import write_text_atomic
from searchrel.config import Config
from searchrel.drift.decide import STATE_FILE, decide
from searchrel.drift.prometheus import export_drift_metrics
from searchrel.drift.report import run_drift
from searchrel.request_log import read_request_log
from searchrel.tables import read_table, write_quarantine

VERDICT_JSON = "drift.json"


def recent_rows(log: pa.Table, hours: float) -> tuple[pa.Table, int]:
    """The log's rows of the ``hours`` before its newest row (0: all), and how many are older.

    The log keeps growing and a scheduled check must judge what is served now, not traffic a
    student replaced days ago. Anchored on the newest row, not the clock, so a replayed or
    copied log gives the same window."""
    if hours <= 0 or log.num_rows == 0:
        return log, 0
    ts = log.column("ts")
    newest = pc.max(ts).as_py()
    start = pa.scalar(newest - dt.timedelta(hours=hours), type=ts.type)
    recent = log.filter(pc.greater_equal(ts, start))
    return recent, log.num_rows - recent.num_rows


def drift_job(
    reference_path: Path,
    requests_dir: Path,
    out_dir: Path,
    cfg: Config,
    state_path: Path | None = None,
) -> dict[str, Any]:
    """The verdict, its Prometheus metrics (``drift.prom``) and the relabel decision, as
    written to ``drift.json``."""
    levels = cfg.data.levels
    reference = read_table(reference_path, "student_features", levels)
    current = read_request_log(requests_dir, levels)
    if current.quarantine.num_rows:
        write_quarantine(current.quarantine, out_dir / "request_log_quarantine.parquet")
    window, older = recent_rows(current.table, cfg.drift.window_hours)
    verdict = run_drift(reference.table, window, cfg.drift, out_dir)
    result = verdict.to_json()
    result["request_log"] = {**current.summary(), "rows_before_the_window": older}
    result["prometheus"] = export_drift_metrics(verdict, out_dir, cfg.drift.pushgateway)
    result["decision"] = decide(verdict, cfg.drift, state_path or out_dir / STATE_FILE)
    write_text_atomic(out_dir / VERDICT_JSON, json.dumps(result, indent=2, default=str) + "\n")
    return result
