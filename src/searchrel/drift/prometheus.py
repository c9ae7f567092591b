"""The drift verdict as Prometheus metrics: a textfile for node_exporter's textfile collector
(``drift.prom``, written atomically) or a push to a Pushgateway (``searchrel.pushmetrics``).

Names (all gauges, label ``locale`` where per locale):
    searchrel_drift_share                 share of the student's scalar features that drifted
    searchrel_drift_detected              1 when the verdict says drift (the alert's input)
    searchrel_drift_score_detected        1 when the predicted-score distribution drifted
    searchrel_drift_embedding_auc         EmbeddingsDrift classifier AUC on query embeddings
    searchrel_drift_embedding_detected    1 when the query embeddings drifted
    searchrel_drift_locale_share{locale}  the share per locale with enough rows
    searchrel_drift_current_rows          served rows in the window
    searchrel_drift_enough_data           1 when both sides had min_window rows
    searchrel_drift_last_run_timestamp_seconds   when this verdict was made (freshness alerts)
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from searchrel.pushmetrics import export_registry, set_gauge

TEXTFILE = "drift.prom"
JOB = "searchrel-drift"  # the Pushgateway job, and so the `job` label of these series


def drift_registry(verdict: dict[str, Any], now: float | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = partial(set_gauge, registry)
    emb = verdict.get("embedding_drift") or {}
    score = verdict.get("score_drift") or {}
    gauge("searchrel_drift_share", "Share of scalar features drifted", verdict.get("drift_share"))
    gauge("searchrel_drift_detected", "1 when drift was detected", int(verdict["drift_detected"]))
    gauge("searchrel_drift_score_detected", "1 when the predicted-score distribution drifted",
          int(bool(score.get("drift_detected"))) if score else None)  # fmt: skip
    gauge("searchrel_drift_embedding_auc", "EmbeddingsDrift classifier ROC AUC", emb.get("score"))
    gauge("searchrel_drift_embedding_detected", "1 when query embeddings drifted",
          int(bool(emb.get("drift_detected"))) if emb else None)  # fmt: skip
    gauge("searchrel_drift_current_rows", "Served rows in the window", verdict["current_rows"])
    gauge("searchrel_drift_enough_data", "1 when both sides had min_window rows",
          int(verdict["enough_data"]))  # fmt: skip
    gauge("searchrel_drift_last_run_timestamp_seconds", "When the verdict was made",
          now if now is not None else time.time())  # fmt: skip
    per_locale = verdict.get("per_locale") or {}
    if per_locale:
        locale_share = Gauge("searchrel_drift_locale_share", "Drift share per locale",
                             ["locale"], registry=registry)  # fmt: skip
        for locale, figures in per_locale.items():
            locale_share.labels(locale=locale).set(float(figures["drift_share"]))
    return registry


def export_drift_metrics(
    verdict: dict[str, Any], out_dir: Path, pushgateway: str = "", job: str = JOB
) -> dict[str, Any]:
    """Write ``out_dir/drift.prom``; push too when a Pushgateway URL is configured."""
    return export_registry(drift_registry(verdict), out_dir / TEXTFILE, pushgateway, job)
