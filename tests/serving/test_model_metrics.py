"""The served model's metrics: its version and export time, one series per loaded model."""

from __future__ import annotations

from prometheus_client import REGISTRY

from searchrel.serving import metrics

CREATED = "searchrel_model_created_timestamp_seconds"


def created_series() -> dict[str, float]:
    return {
        s.labels["model_version"]: s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == CREATED
    }


def test_a_reload_replaces_the_served_models_export_time() -> None:
    metrics.record_model("searchrel-student", "student-aaaaaaaaaaaa", 1_700_000_000.0, 3)
    assert created_series() == {"student-aaaaaaaaaaaa": 1_700_000_000.0}
    metrics.record_model("searchrel-student", "student-bbbbbbbbbbbb", 1_800_000_000.0, 3)
    assert created_series() == {"student-bbbbbbbbbbbb": 1_800_000_000.0}


def test_a_bundle_without_an_export_time_publishes_no_age() -> None:
    metrics.record_model("searchrel-student", "student-cccccccccccc", None, 3)
    assert created_series() == {}
