"""Alertmanager routing: amtool accepts the config and rejects a broken one, every alert of
rules.yml (with the labels it fires with) reaches the receiver meant for it, no secret is
inline, and a real Alertmanager inhibits the student's warnings while its predictor is down."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from searchrel.demo import free_port

from .test_monitoring import alerts
from .tools import REPO, find_tool, require_tool, run

CONFIG = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"
BROKEN = Path(__file__).parent / "fixtures" / "broken_alertmanager.yml"
SECRETS_DIR = "/etc/alertmanager/secrets/"

# Where each alert must land; a new alert must be added here, with its intended receiver.
RECEIVER = {
    "SearchrelErrorBudgetFastBurn": "pager",
    "SearchrelPredictorDown": "pager",
    "SearchrelErrorBudgetSlowBurn": "chat",
    "SearchrelLatencyP99High": "chat",
    "SearchrelServedModelStale": "chat",
    "SearchrelTeacherLabelsStale": "chat",
    "SearchrelTeacherLabelsMissing": "chat",
    "SearchrelPipelineRunFailed": "chat",
    "SearchrelDriftDetected": "ml-team",
}
# Keys that would hold a credential inline; each has a *_file twin that must be used instead.
INLINE_SECRETS = {"api_url", "routing_key", "service_key", "api_key", "bot_token", "password",
                  "credentials", "auth_token", "api_secret", "token", "secret"}  # fmt: skip


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def route_of(labels: dict[str, str]) -> subprocess.CompletedProcess[str]:
    amtool = require_tool("amtool")
    pairs = [f"{k}={v}" for k, v in sorted(labels.items())]
    return run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *pairs])


def test_amtool_accepts_the_config() -> None:
    result = run([require_tool("amtool"), "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_rejects_the_broken_config() -> None:
    result = run([require_tool("amtool"), "check-config", str(BROKEN)])
    assert result.returncode != 0, "amtool accepted a route to an undefined receiver"
    assert 'undefined receiver "pagr"' in result.stdout + result.stderr


def test_amtool_rejects_an_inline_secret_beside_its_file(tmp_path: Path) -> None:
    """Pasting the webhook URL next to its file is refused, not silently preferred."""
    cfg = config()
    cfg["receivers"][1]["slack_configs"][0]["api_url"] = "https://hooks.slack.com/services/x"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = run([require_tool("amtool"), "check-config", str(path)])
    assert result.returncode != 0, result.stdout


def test_every_alert_has_an_intended_receiver() -> None:
    assert {a["alert"] for a in alerts()} == set(RECEIVER)


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_reaches_its_receiver(alert: dict[str, Any]) -> None:
    labels = {"alertname": alert["alert"], "namespace": "searchrel", **alert["labels"]}
    result = route_of(labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == RECEIVER[alert["alert"]], (labels, result.stdout)


def test_an_alert_of_unknown_severity_still_reaches_people() -> None:
    result = route_of({"alertname": "Unexpected", "severity": "info"})
    assert result.returncode == 0 and result.stdout.strip() == "chat", result.stdout


def test_secrets_are_read_from_files_only() -> None:
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                assert key not in INLINE_SECRETS, f"inline secret {key}: use {key}_file"
                if key.endswith("_file"):
                    files.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    cfg = config()
    walk(cfg)
    # Every integration (a PagerDuty or Slack config of a receiver) reads its credential file.
    integrations = [c for r in cfg["receivers"] for k, v in r.items() if k != "name" for c in v]
    assert len(files) == len(integrations)
    assert all(f.startswith(SECRETS_DIR) for f in files), files


# ---- a real Alertmanager: inhibition, which amtool cannot test ----


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = find_tool("prometheus-alertmanager") or find_tool("alertmanager")
    if binary is None:
        pytest.skip("alertmanager not found: apt-get install prometheus-alertmanager")
    cfg = config()
    # Same routes and inhibit rules; receivers without integrations, so nothing is sent.
    cfg["receivers"] = [{"name": r["name"]} for r in cfg["receivers"]]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    base = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address={base.removeprefix('http://')}",
         "--cluster.listen-address="],  # no HA gossip port
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"alertmanager did not start (exit code {proc.poll()})")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _alert(name: str, namespace: str) -> dict[str, Any]:
    (rule,) = [a for a in alerts() if a["alert"] == name]
    return {"labels": {"alertname": name, "namespace": namespace, **rule["labels"]}}


def test_a_downed_predictor_inhibits_the_students_warnings_in_its_namespace(
    alertmanager: str,
) -> None:
    sent = [
        _alert("SearchrelPredictorDown", "searchrel"),
        _alert("SearchrelLatencyP99High", "searchrel"),  # a symptom: inhibited
        _alert("SearchrelLatencyP99High", "searchrel-dev"),  # another namespace: not
        _alert("SearchrelTeacherLabelsStale", "searchrel"),  # not the student's: not
    ]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=sent, timeout=5).raise_for_status()

    def states() -> dict[tuple[str, str], str]:
        got = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        return {(a["labels"]["alertname"], a["labels"]["namespace"]): a["status"]["state"]
                for a in got}  # fmt: skip

    expected = {
        ("SearchrelPredictorDown", "searchrel"): "active",
        ("SearchrelLatencyP99High", "searchrel"): "suppressed",
        ("SearchrelLatencyP99High", "searchrel-dev"): "active",
        ("SearchrelTeacherLabelsStale", "searchrel"): "active",
    }
    deadline = time.monotonic() + 20
    while states() != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert states() == expected
