"""`pipelines submit` and `schedule` through the real kfp.Client over HTTP.

Kubeflow Pipelines' API server needs a cluster (MySQL, Argo, object store) and cannot run
here, so a recorder on 127.0.0.1 answers the five KFP v2beta1 endpoints the client calls and
keeps what it was sent: the compiled pipeline, the parameters, the service account, the cron.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrel.pipelines.catalog import COMPILED_DIR, cluster_label_config
from searchrel.pipelines.submit import SERVICE_ACCOUNT, schedule, submit
from tests.conftest import TINY_CONFIG

REPLIES = {
    "/apis/v2beta1/experiments": {"experiment_id": "exp-1"},
    "/apis/v2beta1/runs": {"run_id": "run-1"},
    "/apis/v2beta1/recurringruns": {"recurring_run_id": "rec-1"},
}


@pytest.fixture
def kfp_api() -> Iterator[dict[str, Any]]:
    received: dict[str, Any] = {"posts": {}}

    class Recorder(BaseHTTPRequestHandler):
        def _reply(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # healthz, experiment lookup by name: nothing there yet
            self._reply({})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received["posts"][self.path] = body
            self._reply(REPLIES.get(self.path, {}))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received["host"] = f"http://127.0.0.1:{server.server_port}"
    yield received
    server.shutdown()


def committed_spec(name: str) -> dict[str, Any]:
    return next(yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text()))


def test_submit_sends_the_committed_pipeline_with_its_parameters(kfp_api: dict) -> None:
    params = {"source": "s3://lake/impressions/2026-11-26", "teacher_uri": "s3://m/teacher/7",
              "gitops_repo": "https://git.example.com/ml/gitops.git"}  # fmt: skip
    result = submit(kfp_api["host"], "daily_distillation", params, "data:\n  levels: 5\n")
    assert result["run_id"] == "run-1"
    run = kfp_api["posts"]["/apis/v2beta1/runs"]
    assert run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["parameters"] == {**params, "config_yaml": "data:\n  levels: 5\n"}
    assert run["service_account"] == SERVICE_ACCOUNT
    sent = run["pipeline_spec"]["pipeline_spec"]
    assert sent["root"] == committed_spec("daily_distillation")["root"]
    kubernetes = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    assert "exec-label-shard" in kubernetes["deploymentSpec"]["executors"]  # GPU settings travel


def test_schedule_creates_a_six_field_cron_run_that_never_overlaps_or_catches_up(
    kfp_api: dict,
) -> None:
    names = ["reference_uri", "requests_dir", "state_path", "teacher_uri", "items_uri",
             "judgments_uri", "impressions_uri"]  # fmt: skip
    result = schedule(kfp_api["host"], "drift_watch", "0 0 */6 * * *", {n: "s3://x" for n in names})
    assert result["recurring_run_id"] == "rec-1"
    job = kfp_api["posts"]["/apis/v2beta1/recurringruns"]
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 */6 * * *"}}
    assert job["max_concurrency"] == 1 and job["no_catchup"] is True and job["mode"] == "ENABLE"
    assert job["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "searchrel-drift-watch"


@pytest.mark.slow
def test_a_drifted_window_starts_the_daily_pipeline_on_the_cluster_and_a_calm_one_does_not(
    kfp_api: dict, local_run: dict, tmp_path: Path
) -> None:
    from tests.pipelines.test_drift_watch_local import write_window

    features = Path(local_run["outputs"]["features"])
    # The committed pipeline fans out over cluster.yaml's label shards; submit refuses a config
    # whose label section differs, so the tiny drift settings travel with the cluster's label.
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["label"] = cluster_label_config().model_dump(mode="json")
    cluster_tiny = tmp_path / "tiny_with_cluster_label.yaml"
    cluster_tiny.write_text(yaml.safe_dump(config))
    params = ["--param", "source=s3://lake/window", "--param", "teacher_uri=s3://m/teacher",
              "--param", "gitops_repo=https://git.example.com/ml/gitops.git"]  # fmt: skip

    def drift(window: Path, name: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "searchrel", "drift", "--reference",
             str(features / "student_features.parquet"), "--requests", str(window),
             "--out", str(tmp_path / name), "--config", str(cluster_tiny),
             "--submit-host", kfp_api["host"], *params],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    calm = drift(write_window(features, tmp_path / "calm_log", 0.0), "calm")
    assert calm["decision"]["relabel"] is False and "submitted" not in calm
    assert "/apis/v2beta1/runs" not in kfp_api["posts"]
    drifted = drift(write_window(features, tmp_path / "drift_log", 2.0), "drifted")
    assert drifted["decision"]["relabel"] is True
    assert drifted["submitted"]["run_id"] == "run-1"
    run = kfp_api["posts"]["/apis/v2beta1/runs"]
    assert run["runtime_config"]["parameters"]["source"] == "s3://lake/window"
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == (
        "searchrel-daily-distillation"
    )


def test_a_bad_parameter_fails_before_the_drift_job_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "drift", "--reference", str(tmp_path / "none"),
         "--requests", str(tmp_path), "--out", str(tmp_path / "o"),
         "--submit-host", "http://127.0.0.1:9", "--param", "sorce=s3://x"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "no parameter sorce" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_previous_labels_as_a_bucket_uri_is_refused_before_any_contact(tmp_path: Path) -> None:
    """The label tasks read previous_labels as a file path; a gs:// value would only fail
    inside every shard task, hours into the run."""
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "pipelines", "submit", "--host",
         "http://127.0.0.1:9", "-p", "daily_distillation", "--param", "source=/data/day",
         "--param", "teacher_uri=/models/teacher", "--param", "gitops_repo=https://g/r.git",
         "--param", "previous_labels=gs://bucket/labels/2026-11-25"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert (
        "previous_labels=gs://bucket/labels/2026-11-25 is a URI; the tasks read it as a local path"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr
