"""Prometheus metrics of the student server, exposed on KServe's /metrics beside its own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

REQUESTS = Counter(
    "searchrel_requests_total",
    "Scoring requests by protocol and HTTP status",
    ["protocol", "status"],
)
LATENCY = Histogram(
    "searchrel_request_latency_seconds",
    "Time to score one request (parse, features, student) in seconds",
    ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CANDIDATES = Histogram(
    "searchrel_candidates_per_request",
    "Candidate items per scored query",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
SCORES = Histogram(
    "searchrel_score",
    "Expected relevance level of each scored item",
    buckets=(1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
)
CACHE_HIT_RATIO = Gauge("searchrel_query_cache_hit_ratio", "Query-embedding cache hit ratio")
INLINE_ITEMS = Counter(
    "searchrel_inline_items_total", "Items scored from request text (not in the item store)"
)
MODEL_INFO = Info("searchrel_model", "The student model being served")
