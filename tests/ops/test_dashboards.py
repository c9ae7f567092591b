"""Grafana dashboards: every PromQL expression parses (promtool), reads only series that the
server, the drift job, label-collect, Argo's workflow controller or the recording rules produce,
and the dashboards ship in every overlay as the ConfigMap Grafana's sidecar loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrel.drift.prometheus import drift_registry
from searchrel.drift.verdict import Signal, Verdict
from searchrel.serving import prometheus as server_metrics

from .test_monitoring import OTHER_SERIES, TARGET_LABELS, exported_series, rules
from .tools import REPO, require_tool, run

DASHBOARDS = sorted((REPO / "manifests" / "base" / "dashboards").glob("*.json"))
OVERLAYS = sorted(p.name for p in (REPO / "manifests" / "overlays").iterdir() if p.is_dir())


def exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            out += [(f"{path.stem}: {panel['title']}", t["expr"]) for t in panel["targets"]]
    return out


def known_series() -> set[str]:
    drift = {
        m.name
        for m in drift_registry(
            Verdict(
                reference_rows=1,
                current_rows=1,
                enough_data=True,
                signals=[
                    Signal("features", 0.1, 0.3, True),
                    Signal("score", 0.2, 0.05, False),
                    Signal("embeddings", 0.5, 0.55, False),
                ],
                locale_shares={"en-US": 0.1},
            )
        ).collect()
    }
    recorded = {r["record"] for r in rules() if "record" in r}
    info = {f"{server_metrics.MODEL_INFO._name}_info"}  # an Info metric's series name
    return set(exported_series()) | drift | recorded | info | set(OTHER_SERIES)


def test_there_are_serving_drift_and_pipelines_dashboards_with_unique_uids() -> None:
    boards = [json.loads(p.read_text()) for p in DASHBOARDS]
    uids = [b["uid"] for b in boards]
    assert sorted(uids) == ["searchrel-drift", "searchrel-pipelines", "searchrel-serving"]
    for board in boards:
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and all(p["targets"] for p in board["panels"])


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    group: dict[str, Any] = {
        "name": "dashboard-queries",
        "rules": [
            {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(exprs())
        ],
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_read_only_series_that_exist() -> None:
    known = known_series()
    for where, expr in exprs():
        bare = re.sub(r"\"[^\"]*\"", "", expr)  # label values are not series names
        names = set(re.findall(r"\b(searchrel[a-z0-9_:]*|argo_workflows_[a-z0-9_]*|up)\b", bare))
        assert names, f"{where}: reads no series"
        missing = names - known
        assert not missing, f"{where}: {sorted(missing)} are not produced by anything"
        labels = {x.strip() for g in re.findall(r"by \(([^)]*)\)", expr) for x in g.split(",")}
        allowed = TARGET_LABELS | {"le", "protocol", "status", "locale", "version"}
        allowed |= {"model_version", "phase", "exported_namespace"}
        assert labels <= allowed, (where, labels - allowed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_ships_the_dashboards_to_grafana(overlay: str) -> None:
    require_tool("kubectl")
    docs = list(
        yaml.safe_load_all(
            run(["kubectl", "kustomize", str(REPO / "manifests" / "overlays" / overlay)]).stdout
        )
    )
    (cm,) = [
        d
        for d in docs
        if d
        and d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "searchrel-grafana-dashboards"
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    for path in DASHBOARDS:
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())
