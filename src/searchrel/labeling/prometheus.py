"""The daily labeling's freshness as Prometheus metrics, from ``label-collect``'s summary:
``labels.prom`` beside the collected labels, or a push to a Pushgateway
(``searchrel.pushmetrics``). Written only when every shard was collected, so a failed or
missing run leaves the last success's timestamp to age until SearchrelTeacherLabelsStale fires.

Names (all gauges):
    searchrel_teacher_labels_last_success_timestamp_seconds   when label-collect last finished
    searchrel_teacher_labels_rows                             labeled rows it collected
    searchrel_teacher_labels_failed_rows                      pairs still without a label
                                                              (retried by the next run)
    searchrel_teacher_labels_newest_date_timestamp_seconds    the newest impressions day labeled
                                                              (00:00 UTC), to tell a run over
                                                              an old partition from a fresh one
"""

from __future__ import annotations

import datetime as dt
import time
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from searchrel.pushmetrics import export_registry, set_gauge

TEXTFILE = "labels.prom"
JOB = "searchrel-label-collect"  # the Pushgateway job, and so the `job` label of these series


def labels_registry(summary: dict[str, Any], now: float | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = partial(set_gauge, registry)
    dates = summary["dates"]
    newest = max(dates) if dates else None
    gauge("searchrel_teacher_labels_last_success_timestamp_seconds",
          "When label-collect last gathered every shard",
          now if now is not None else time.time())  # fmt: skip
    gauge("searchrel_teacher_labels_rows", "Labeled rows collected by the last run",
          sum(d["rows"] for d in dates.values()))  # fmt: skip
    gauge("searchrel_teacher_labels_failed_rows", "Pairs without a label, retried next run",
          sum(d["failed"] for d in dates.values()))  # fmt: skip
    gauge("searchrel_teacher_labels_newest_date_timestamp_seconds",
          "The newest impressions day labeled, 00:00 UTC",
          _day_start(newest) if newest else None)  # fmt: skip
    return registry


def export_label_metrics(
    summary: dict[str, Any], out_dir: Path, pushgateway: str = "", job: str = JOB
) -> dict[str, Any]:
    """Write ``out_dir/labels.prom``; push too when a Pushgateway URL is configured."""
    return export_registry(labels_registry(summary), out_dir / TEXTFILE, pushgateway, job)


def _day_start(date: str) -> float:
    return dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp()
