"""The served model's metrics: its version and export time, one series per loaded model."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from searchrel.serving import prometheus

CREATED = "searchrel_model_created_timestamp_seconds"


def created_series() -> dict[str, float]:
    return {
        s.labels["model_version"]: s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == CREATED
    }


def test_a_reload_replaces_the_served_models_export_time() -> None:
    prometheus.record_model(
        "searchrel-student", "student-aaaaaaaaaaaa", 1_700_000_000.0, 3, "onnxruntime"
    )
    assert created_series() == {"student-aaaaaaaaaaaa": 1_700_000_000.0}
    prometheus.record_model(
        "searchrel-student", "student-bbbbbbbbbbbb", 1_800_000_000.0, 3, "onnxruntime"
    )
    assert created_series() == {"student-bbbbbbbbbbbb": 1_800_000_000.0}


def test_a_bundle_without_an_export_time_publishes_no_age() -> None:
    prometheus.record_model("searchrel-student", "student-cccccccccccc", None, 3, "onnxruntime")
    assert created_series() == {}


def test_a_scoring_request_that_crashes_anywhere_is_counted_as_a_500() -> None:
    """The HTTP middleware counts what the client got, even when no handler caught it."""
    import asyncio

    import httpx

    from searchrel.config import ServeConfig
    from searchrel.serving.middleware import Guard

    async def crashing_app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    def count(status: str) -> float:
        labels = {"protocol": "v2", "status": status}
        return REGISTRY.get_sample_value("searchrel_requests_total", labels) or 0.0

    async def post(path: str) -> int:
        transport = httpx.ASGITransport(
            app=Guard(crashing_app, ServeConfig(max_body_bytes=100), ready=lambda: True),
            raise_app_exceptions=False,
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.post(path, content=b"{}")).status_code

    before = count("500")
    assert asyncio.run(post("/v2/models/m/infer")) == 500
    assert asyncio.run(post("/v2/models/m")) == 500  # not a scoring path: not counted
    assert count("500") == before + 1
    assert REGISTRY.get_sample_value(
        "searchrel_request_latency_seconds_count", {"protocol": "v2", "status_class": "5xx"}
    )
