"""A real Prometheus (Debian's package) on 127.0.0.1 with our rules, scraping a real student
server and the drift job's metrics: faults injected, alerts seen firing.

The rules are monitoring/prometheus/rules.yml with only the clock changed so the test runs in
seconds: rate windows [5m]..[6h] become [20s], `for:` becomes 0s and the groups evaluate every
second. The expressions, labels and thresholds are the production ones.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from searchrel.demo import free_port, wait_ready
from searchrel.drift.prometheus import export_drift_metrics
from searchrel.drift.verdict import Signal, Verdict
from tests.serving.conftest import MODEL

pytestmark = pytest.mark.slow
RULES = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus" / "rules.yml"
PROMETHEUS = shutil.which("prometheus")


def fast_rules(out: Path) -> Path:
    text = re.sub(r"\[(5m|30m|1h|6h)\]", "[20s]", RULES.read_text(encoding="utf-8"))
    text = re.sub(r"for: \d+[smh]", "for: 0s", text)
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        group["interval"] = "1s"
    out.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return out


@pytest.fixture
def stack(local_run: dict, tmp_path: Path) -> Iterator[dict]:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (.ci/run installs Debian's prometheus)")
    server_port, prom_port, drift_port = free_port(), free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "searchrel", "serve", "--model-dir",
         local_run["outputs"]["student"], "--port", str(server_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    drift_dir = tmp_path / "drift"
    drift_dir.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(drift_dir))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    drift_http = ThreadingHTTPServer(("127.0.0.1", drift_port), handler)
    threading.Thread(target=drift_http.serve_forever, daemon=True).start()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(fast_rules(tmp_path / "rules.yml"))],
        "scrape_configs": [
            {"job_name": "student", "static_configs": [{
                "targets": [f"127.0.0.1:{server_port}"],
                "labels": {"namespace": "searchrel-test", "pod": "searchrel-student-predictor-0"},
            }]},
            {"job_name": "drift", "metrics_path": "/drift.prom", "static_configs": [{
                "targets": [f"127.0.0.1:{drift_port}"], "labels": {"namespace": "searchrel-test"},
            }]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{server_port}"
    try:
        wait_ready(base, MODEL, server, timeout=120)
        yield {"server": server, "base": base, "prom": f"http://127.0.0.1:{prom_port}",
               "drift_dir": drift_dir}  # fmt: skip
    finally:
        for proc in (server, prom):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        drift_http.shutdown()


def firing(prom: str) -> dict[str, dict]:
    try:
        alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
    except (httpx.HTTPError, KeyError, ValueError):
        return {}
    return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}


def wait_for(check, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def test_prometheus_scrapes_the_server_and_fires_when_it_goes_down(stack: dict) -> None:
    prom = stack["prom"]
    for _ in range(20):  # traffic, so the request series exist
        httpx.post(stack["base"] + f"/v1/models/{MODEL}:predict",
                   json={"instances": [{"query": "vase", "item_ids": ["x"]}]})  # fmt: skip

    def scraped() -> bool:
        r = httpx.get(f"{prom}/api/v1/query", params={"query": "searchrel_requests_total"})
        return bool(r.json()["data"]["result"]) if r.status_code == 200 else False

    assert wait_for(scraped), "Prometheus never scraped searchrel_requests_total"
    # The served model's age, from its bundle's export time: the student was just trained, so
    # it is minutes old and SearchrelServedModelStale stays silent.
    query = {"query": "time() - searchrel_model_created_timestamp_seconds"}
    (age,) = httpx.get(f"{prom}/api/v1/query", params=query).json()["data"]["result"]
    assert age["metric"]["model_version"].startswith("student-")
    assert 0 <= float(age["value"][1]) < 24 * 3600, age
    assert "SearchrelServedModelStale" not in firing(prom)
    # Prometheus starts scraping while the server is still loading, so the alert may fire
    # first; with the server up it must resolve.
    assert wait_for(lambda: "SearchrelPredictorDown" not in firing(prom), timeout=20), firing(prom)
    stack["server"].kill()  # the fault: the predictor is gone
    assert wait_for(lambda: "SearchrelPredictorDown" in firing(prom)), firing(prom)
    alert = firing(prom)["SearchrelPredictorDown"]
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["pod"] == "searchrel-student-predictor-0"


def test_a_drift_verdict_reaches_prometheus_and_fires_the_drift_alert(stack: dict) -> None:
    prom, drift_dir = stack["prom"], stack["drift_dir"]
    calm = Verdict(500, 500, True, [Signal("features", 0.05, 0.3, False)])
    export_drift_metrics(calm, drift_dir)
    assert wait_for(lambda: bool(httpx.get(f"{prom}/api/v1/query", params={
        "query": "searchrel_drift_share"}).json()["data"]["result"]))  # fmt: skip
    time.sleep(2)
    assert "SearchrelDriftDetected" not in firing(prom)
    export_drift_metrics(Verdict(500, 500, True, [Signal("features", 0.6, 0.3, True)]), drift_dir)
    assert wait_for(lambda: "SearchrelDriftDetected" in firing(prom)), firing(prom)

    def value() -> float:
        alert = firing(prom).get("SearchrelDriftDetected")
        return float(alert["value"]) if alert else -1.0

    # The recorded share can lag the raw gauge by one evaluation; the value catches up.
    assert wait_for(lambda: value() == pytest.approx(0.6), timeout=20), value()
