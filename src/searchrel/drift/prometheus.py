"""The drift verdict as Prometheus metrics: a textfile for node_exporter's textfile collector
(``drift.prom``, written atomically) or a push to a Pushgateway (``searchrel.pushmetrics``).

Each signal of the verdict gives a statistic gauge and a 0/1 gauge (left out where the signal
was not tested or its statistic not computed); the names of today's signals are in
``SIGNAL_GAUGES``, a new signal gets ``searchrel_drift_<name>_statistic`` and ``_detected``.
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

from searchrel.drift.verdict import Signal, Verdict
from searchrel.pushmetrics import export_registry, set_gauge

TEXTFILE = "drift.prom"
JOB = "searchrel-drift"  # the Pushgateway job, and so the `job` label of these series
Named = tuple[str, str]  # (gauge name, help)
# Per signal: its statistic's gauge (None: not exported) and its 0/1 gauge. The names predate
# the signal list; dashboards and alerts read them.
SIGNAL_GAUGES: dict[str, tuple[Named | None, Named]] = {
    "features": (
        ("searchrel_drift_share", "Share of scalar features drifted"),
        ("searchrel_drift_detected", "1 when drift was detected"),
    ),
    "score": (
        None,
        ("searchrel_drift_score_detected", "1 when the predicted-score distribution drifted"),
    ),
    "embeddings": (
        ("searchrel_drift_embedding_auc", "EmbeddingsDrift classifier ROC AUC"),
        ("searchrel_drift_embedding_detected", "1 when query embeddings drifted"),
    ),
}


def signal_gauges(signal: Signal) -> tuple[Named | None, Named]:
    default = (
        (f"searchrel_drift_{signal.name}_statistic", f"The {signal.name} drift statistic"),
        (f"searchrel_drift_{signal.name}_detected", f"1 when the {signal.name} drifted"),
    )
    return SIGNAL_GAUGES.get(signal.name, default)


def drift_registry(verdict: Verdict, now: float | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = partial(set_gauge, registry)
    for signal in verdict.signals:
        statistic, detected = signal_gauges(signal)
        if statistic is not None:
            gauge(*statistic, signal.statistic)
        gauge(*detected, int(signal.drifted))
    gauge("searchrel_drift_current_rows", "Served rows in the window", verdict.current_rows)
    gauge("searchrel_drift_enough_data", "1 when both sides had min_window rows",
          int(verdict.enough_data))  # fmt: skip
    gauge("searchrel_drift_last_run_timestamp_seconds", "When the verdict was made",
          now if now is not None else time.time())  # fmt: skip
    if verdict.locale_shares:
        locale_share = Gauge("searchrel_drift_locale_share", "Drift share per locale",
                             ["locale"], registry=registry)  # fmt: skip
        for locale, share in verdict.locale_shares.items():
            locale_share.labels(locale=locale).set(float(share))
    return registry


def export_drift_metrics(
    verdict: Verdict, out_dir: Path, pushgateway: str = "", job: str = JOB
) -> dict[str, Any]:
    """Write ``out_dir/drift.prom``; push too when a Pushgateway URL is configured."""
    return export_registry(drift_registry(verdict), out_dir / TEXTFILE, pushgateway, job)
