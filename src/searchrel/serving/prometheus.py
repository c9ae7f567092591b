"""Prometheus metrics of the student server, exposed on KServe's /metrics beside its own."""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.registry import Collector

# Every request to the scoring endpoints (V1 predict, V2 infer), counted and timed by the HTTP
# middleware (searchrel.serving.middleware) whatever answered it: 4xx from validation and
# decoding, 5xx from anywhere, 413 for bodies over serve.max_body_bytes.
REQUESTS = Counter(
    "searchrel_requests_total",
    "Scoring requests by protocol and HTTP status",
    ["protocol", "status"],
)
LATENCY = Histogram(
    "searchrel_request_latency_seconds",
    "Time from a scoring request's arrival to its answer, in seconds, by status class (2xx, ...)",
    ["protocol", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "searchrel_requests_in_flight", "Scoring requests received and not yet answered", ["protocol"]
)
CANDIDATES = Histogram(
    "searchrel_candidates_per_request",
    "Candidate items per scored query",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)


class ScoreHistogram(Collector):
    """A histogram observed a whole request at a time: ``prometheus_client``'s ``Histogram``
    takes one value per call, and a call per scored item cost more than the student's forward
    pass at 1,000 candidates. Exposed exactly as a ``Histogram`` of the same name would be."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = np.array(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        where = np.searchsorted(self.bounds, values, side="left")  # le: a value on a bound is in
        counts = np.bincount(where, minlength=len(self._counts))
        total = float(np.sum(values, dtype=np.float64))
        with self._lock:
            self._counts += counts
            self._sum += total

    def collect(self) -> list[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = np.cumsum(self._counts), self._sum
        buckets = [
            (repr(float(b)), float(c)) for b, c in zip(self.bounds, cumulative, strict=False)
        ]
        buckets.append(("+Inf", float(cumulative[-1])))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        return [family]


SCORES = ScoreHistogram(
    "searchrel_score",
    "Expected relevance level of each scored item",
    buckets=(1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
)
CACHE_HIT_RATIO = Gauge("searchrel_query_cache_hit_ratio", "Query-embedding cache hit ratio")
INLINE_ITEMS = Counter(
    "searchrel_inline_items_total", "Items scored from request text (not in the item store)"
)
MODEL_INFO = Info("searchrel_model", "The student model being served")
# When the served bundle was exported (StudentMeta.created), so an alert can tell a server left
# on an old model (SearchrelServedModelStale). One series, labelled with the served version.
MODEL_CREATED = Gauge(
    "searchrel_model_created_timestamp_seconds",
    "When the served student was exported (Unix time), by version",
    ["model_version"],
)


def record_model(
    model: str, version: str, created: float | None, items: int, query_encoder: str
) -> None:
    """Publish what is served, with what runs its query encoder (onnxruntime, torch: a server
    that fell back to torch pays more per uncached query); a bundle without an export time
    publishes no age at all (a made-up one, such as the file's mtime after a download, would
    hide a stale model)."""
    MODEL_INFO.info(
        {"model": model, "version": version, "items": str(items), "query_encoder": query_encoder}
    )
    MODEL_CREATED.clear()  # a reload must not leave the previous version's series behind
    if created is not None:
        MODEL_CREATED.labels(model_version=version).set(created)
