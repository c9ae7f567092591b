"""`make demo`: the whole relevance loop on the bundled sample, on this machine.

1. the KFP pipeline under kfp.local's SubprocessRunner: ingest, teacher fine-tune and
   evaluation, teacher labels on the impression log, features, student distillation and
   evaluation;
2. the student on KServe's ModelServer at 127.0.0.1, real V1 and V2 requests for the last
   day's logged queries (each logged by the server's request logger);
3. the Evidently drift check on what was served against what the student was trained on;
4. a summary table, also written as JSON to ``<out>/summary.json``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from searchrel.config import load_config
from searchrel.data.sample import build_sample
from searchrel.drift.job import drift_job

console = Console()
SUMMARY_FILE = "summary.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, model: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the model server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/v2/models/{model}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the model server was not ready within {timeout:.0f}s")


def start_server(
    student_dir: Path, config: Path, port: int, request_log: Path, log_file: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "searchrel", "serve",
        "--model-dir", str(student_dir),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--request-log", str(request_log),
        "--config", str(config),
    ]  # fmt: skip
    with log_file.open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def logged_queries(impressions_path: Path) -> list[tuple[str, str, list[str]]]:
    """The last day's logged (query, locale) with the items shown for it."""
    table = pq.read_table(impressions_path)
    last = pc.max(table.column("date"))
    day = table.filter(pc.equal(table.column("date"), last))
    groups: dict[tuple[str, str], list[str]] = {}
    for row in day.select(["query", "locale", "item_id"]).to_pylist():
        groups.setdefault((row["query"], row["locale"]), []).append(row["item_id"])
    return [(q, loc, ids) for (q, loc), ids in sorted(groups.items())]


def send_requests(
    base: str, model: str, queries: list[tuple[str, str, list[str]]]
) -> dict[str, Any]:
    """Each logged query as a V1 and as a V2 request; latency per request, status counts."""
    latencies: dict[str, list[float]] = {"v1": [], "v2": []}
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for query, locale, item_ids in queries:
            v1 = {"instances": [{"query": query, "locale": locale, "item_ids": item_ids}]}
            v2 = {
                "inputs": [
                    {"name": "query", "datatype": "BYTES", "shape": [1], "data": [query]},
                    {"name": "locale", "datatype": "BYTES", "shape": [1], "data": [locale]},
                    {"name": "item_ids", "datatype": "BYTES", "shape": [len(item_ids)],
                     "data": item_ids},
                ]
            }  # fmt: skip
            for protocol, path, body in (
                ("v1", f"/v1/models/{model}:predict", v1),
                ("v2", f"/v2/models/{model}/infer", v2),
            ):
                started = time.perf_counter()
                response = client.post(path, json=body)
                latencies[protocol].append((time.perf_counter() - started) * 1000)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        # One deliberate mistake, to show the 4xx a caller gets for an unknown item.
        bad = client.post(
            f"/v1/models/{model}:predict",
            json={"instances": [{"query": "test", "item_ids": ["no-such-item"]}]},
        )
    all_ms = latencies["v1"] + latencies["v2"]
    return {
        "queries": len(queries),
        "requests": len(all_ms),
        "candidates": sum(len(ids) for _, _, ids in queries),
        "status_counts": statuses,
        "latency_ms": {
            p: {
                "p50": round(float(np.percentile(v, 50)), 2),
                "p99": round(float(np.percentile(v, 99)), 2),
            }
            for p, v in latencies.items()
            if v
        },
        "all_latency_ms": {
            "p50": round(float(np.percentile(all_ms, 50)), 2),
            "p99": round(float(np.percentile(all_ms, 99)), 2),
        },
        "bad_request_example": {"status": bad.status_code, "body": bad.json()},
    }


# metric key -> short column header, so the table fits an 80-column terminal
HEADLINE = {
    "accuracy": "acc",
    "auroc_ge_3": "AUC≥3",
    "auroc_ge_4": "AUC≥4",
    "auroc_ge_5": "AUC≥5",
    "qwk": "QWK",
    "ndcg_at_20": "nDCG@20",
}


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="searchrel demo: held-out human judgments (test queries)")
    table.add_column("model")
    table.add_column("version")
    for header in HEADLINE.values():
        table.add_column(header, justify="right")
    for role in ("teacher", "student"):
        m = summary[role]
        table.add_row(
            role,
            str(m.get("model_version", "")).split("-")[-1],
            *(f"{m[n]:.3f}" if isinstance(m.get(n), float) else "-" for n in HEADLINE),
        )
    console.print(table)
    serving, drift = summary["serving"], summary["drift"]
    console.print(
        f"serving: {serving['requests']} requests (V1 + V2) for {serving['queries']} queries, "
        f"status {serving['status_counts']}, latency p50 {serving['all_latency_ms']['p50']} ms, "
        f"p99 {serving['all_latency_ms']['p99']} ms"
    )
    console.print(
        f"drift: detected={drift.get('drift_detected')} share={drift.get('drift_share')} "
        f"on {drift.get('current_rows')} served rows "
        f"(report: {drift.get('report_html')})"
    )
    daily, gate = summary["daily"], summary["daily"]["gate"]
    console.print(
        f"daily run: gate {'passed' if gate['passed'] else 'held'} ({gate['reason']}); "
        + (f"deployed as commit {daily['commit']}" if daily["deployed"] else "nothing deployed")
        + f"; the dev overlay serves {daily['served_uri']}"
    )
    console.print(f"summary JSON: {summary['summary_path']}")


def run_demo(out: Path, config: Path) -> dict[str, Any]:
    from searchrel.demo_daily import run_daily
    from searchrel.pipelines.run_local import run_local

    started = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config)
    console.rule("1/5 the pipeline (kfp.local SubprocessRunner)")
    run = run_local(source="sample", config_path=config, pipeline_root=out / "pipeline")
    student_dir = Path(run["outputs"]["student"])
    features_dir = Path(run["outputs"]["features"])

    console.rule("2/5 the student on KServe (127.0.0.1)")
    sample_dir = out / "sample"
    build_sample(sample_dir)
    request_log = out / "request_log"
    for old in request_log.glob("*.jsonl"):
        old.unlink()  # a rerun judges only its own requests
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(student_dir, config, port, request_log, out / "server.log")
    try:
        wait_ready(base, cfg.serve.model_name, server, timeout=180)
        serving = send_requests(
            base, cfg.serve.model_name, logged_queries(sample_dir / "impressions.parquet")
        )
        serving["metrics_sample"] = [
            line
            for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines()
            if line.startswith("searchrel_requests_total")
        ]
    finally:
        serving_exit = stop_server(server)

    console.rule("3/5 drift: served requests vs training data (Evidently)")
    drift = drift_job(features_dir / "student_features.parquet", request_log, out / "drift", cfg)

    console.rule("4/5 a daily run: distil the last day, gate it against the served student, deploy")
    daily = run_daily(out, config, sample_dir, Path(run["outputs"]["teacher"]), student_dir)

    console.rule("5/5 summary")
    teacher_metrics = json.loads(
        (Path(run["outputs"]["teacher_metrics"]) / "metrics.json").read_text()
    )
    student_metrics = json.loads(
        (Path(run["outputs"]["student_metrics"]) / "metrics.json").read_text()
    )
    summary = {
        "teacher": teacher_metrics,
        "student": student_metrics,
        "student_vs_teacher_accuracy": (
            student_metrics["accuracy"] / teacher_metrics["accuracy"]
            if teacher_metrics.get("accuracy")
            else None
        ),
        "serving": serving | {"server_exit_code": serving_exit},
        "drift": drift,
        "daily": daily,
        "pipeline": run,
        "seconds": round(time.perf_counter() - started, 1),
        "summary_path": str(out / SUMMARY_FILE),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print_summary(summary)
    return summary
