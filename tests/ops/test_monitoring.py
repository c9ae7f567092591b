"""The Prometheus rules: promtool accepts them and their unit tests pass (and fail when a rule
is broken), every alert is tested and documented, and every metric and label the rules read is
one the server, a batch step or Argo's workflow controller actually exports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from searchrel.labeling.prometheus import labels_registry
from searchrel.serving import prometheus as server_metrics

from .tools import REPO, require_tool, run

RULES_DIR = REPO / "monitoring" / "prometheus"
RULES = RULES_DIR / "rules.yml"
# The rules' unit tests: by the minute, and those that span days by the hour.
RULES_TESTS = (RULES_DIR / "rules_test.yml", RULES_DIR / "rules_test_daily.yml")

# Series the rules read that the student server does not export itself.
OTHER_SERIES: dict[str, set[str]] = {
    "up": {"job", "instance", "namespace", "pod"},  # Prometheus' own, per scrape target
    # The drift stage's verdict (searchrel.drift), published as gauges.
    "searchrel_drift_detected": set(),
    "searchrel_drift_share": set(),
    # Argo Workflows' controller (it runs KFP v2 pipelines), >= 3.6: "A counter of workflows
    # that have entered each phase ..., by namespace", attributes `phase` and `namespace`
    # (argoproj/argo-workflows docs/metrics.md, `total_count`; new in 3.6 per docs/upgrading.md
    # "Metrics changes", where 3.5's argo_workflows_count became argo_workflows_gauge). Scraped
    # with honor_labels false, its `namespace` arrives as `exported_namespace`.
    "argo_workflows_total_count": {"phase", "namespace", "exported_namespace"},
}
# Prefixes of the series names the rules may read (everything else is a function or keyword).
SERIES_PREFIXES = ("searchrel_", "argo_workflows_")
# Labels Prometheus' Kubernetes pod discovery attaches to every scraped series.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
SERVICES = {"searchrel-student", "searchrel-pipelines"}  # the `service` label of every alert
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def exported_series() -> dict[str, set[str]]:
    """Series name -> label names, for every metric of searchrel.serving.prometheus and of the
    label-collect step (searchrel.labeling.prometheus)."""
    series: dict[str, set[str]] = {}
    for obj in vars(server_metrics).values():
        if isinstance(obj, server_metrics.ScoreHistogram):  # a collector of its own
            series.update({s.name: set(s.labels) for f in obj.collect() for s in f.samples})
            series[f"{obj.name}_bucket"] = {"le"}
            continue
        if not isinstance(obj, MetricWrapperBase):
            continue
        labels = set(getattr(obj, "_labelnames", ()))
        for suffix in SUFFIXES.get(str(obj._type), ("",)):
            series[obj._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    for metric in label_metrics().collect():
        series.update({s.name: set(s.labels) for s in metric.samples})
    return series


def label_metrics() -> Any:
    """What label-collect exports after a run (every gauge set)."""
    return labels_registry({"dates": {"2026-11-01": {"rows": 10, "failed": 1}}}, now=1.0)


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", *map(str, RULES_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "searchrel:request_latency_seconds:p99_rate5m > 0.25",
            "searchrel:request_latency_seconds:p99_rate5m > 0.5",
        ),
        ("ratio_rate5m > (14.4 * 0.005)", "ratio_rate5m > (14.4 * 0.05)"),
        ("max by (namespace) (searchrel_drift_detected) == 1", "searchrel_drift_detected == 2"),
        ("> 7 * 86400", "> 8 * 86400"),
        (
            "max by (namespace) (searchrel_model_created_timestamp_seconds)",
            "min by (namespace) (searchrel_model_created_timestamp_seconds)",
        ),
        ("> 36 * 3600", "> 48 * 3600"),
        ('phase=~"Failed|Error"', 'phase="Failed"'),
        ("offset 1h", "offset 1m"),
    ],
)
def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Path, old: str, new: str) -> None:
    promtool = require_tool("promtool")
    text = RULES.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / RULES.name).write_text(text.replace(old, new), encoding="utf-8")
    for tests in RULES_TESTS:
        shutil.copy(tests, tmp_path / tests.name)
    result = run([promtool, "test", "rules", *(str(tmp_path / t.name) for t in RULES_TESTS)])
    assert result.returncode != 0, "the unit tests did not notice a changed rule"


def test_every_alert_is_documented_and_has_a_severity() -> None:
    assert alerts()
    for alert in alerts():
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["labels"]["service"] in SERVICES, alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = [
        test
        for path in RULES_TESTS
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    ]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no test where it is silent"


def test_rules_read_only_series_and_labels_that_exist() -> None:
    known = {**exported_series(), **OTHER_SERIES}
    assert (
        "searchrel_requests_total" in known and "searchrel_request_latency_seconds_bucket" in known
    )
    for rule in rules():
        expr = rule["expr"]
        used = re.findall(r"\b([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?\s*(?:\[|\)|$|\s)", expr)
        names = {n for n, _ in used if n.startswith(SERIES_PREFIXES) or n == "up"}
        assert names or ":" in expr, f"{rule}: reads no known series"
        for name, selector in used:
            if name not in names:
                continue
            assert name in known, (
                f"{name} is not exported (rule {rule.get('record') or rule.get('alert')})"
            )
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector or ""):
                assert label in known[name] | TARGET_LABELS, f"{name} has no label {label}"
        grouped = {
            label.strip()
            for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)
            for label in group.split(",")
        }
        available = TARGET_LABELS | {"le"}.union(*(known[n] for n in names if n in known))
        assert grouped <= available, f"{rule}: groups by unknown labels {grouped - available}"
