"""Metrics of batch steps (drift check, label collection) for Prometheus.

A batch step is gone before Prometheus could scrape it, so its gauges leave the process two
ways: a textfile for node_exporter's textfile collector (written to a temporary file, then
renamed, so the collector never reads half a file) and, when a Pushgateway URL is configured,
a push that replaces the step's previous group. The group is keyed by the pod's namespace
(``POD_NAMESPACE``, set by the downward API) so dev and prod do not overwrite each other, and
the rules can aggregate by ``namespace`` as they do for scraped pods.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

log = logging.getLogger(__name__)


def set_gauge(registry: CollectorRegistry, name: str, doc: str, value: float | None) -> None:
    """One unlabelled gauge; ``None`` leaves it out (an unknown value is not a zero)."""
    if value is not None:
        Gauge(name, doc, registry=registry).set(float(value))


def export_registry(
    registry: CollectorRegistry, path: Path, pushgateway: str = "", job: str = ""
) -> dict[str, Any]:
    """Write ``path`` (a ``.prom`` textfile); push too when a Pushgateway URL is configured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # writes a temporary file, then renames it
    if not pushgateway:
        return {"textfile": str(path), "pushed_to": None}
    namespace = os.environ.get("POD_NAMESPACE", "default")
    try:
        push_to_gateway(pushgateway, job=job, registry=registry, grouping_key={
            "namespace": namespace})  # fmt: skip
    except OSError as exc:  # the step's labels or verdict stand; the missing series alerts
        log.warning("metrics not pushed to %s: %s", pushgateway, exc)
        return {"textfile": str(path), "pushed_to": None, "push_error": str(exc)}
    return {"textfile": str(path), "pushed_to": pushgateway}
