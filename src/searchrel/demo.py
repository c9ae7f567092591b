"""`make demo`: the whole relevance loop on the bundled sample, on this machine.

1. the KFP pipeline under kfp.local's SubprocessRunner: ingest, teacher fine-tune and
   evaluation, teacher labels on the impression log, features, student distillation and
   evaluation;
2. the student on KServe's ModelServer at 127.0.0.1, real V1 and V2 requests for the last
   day's logged queries (each logged by the server's request logger);
3. the Evidently drift check on what was served against what the student was trained on;
4. a daily run of the distillation pipeline on the last day: its gate against the served
   student and, when the new one is not worse, its deploy as a commit to a GitOps repository;
5. a summary table, also written as JSON to ``<out>/summary.json``.

The console shows one line per step; everything the steps print goes to ``<out>/demo.log``.
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

from searchrel.config import Config, load_config
from searchrel.demo_console import StepConsole

SUMMARY_FILE = "summary.json"
LOG_FILE = "demo.log"  # everything the steps print: KFP's executor logs, library warnings
FAILURE_TAIL = 30  # lines of the log shown when the demo fails


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


def print_summary(summary: dict[str, Any], console: Console) -> None:
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
        f"p99 {serving['all_latency_ms']['p99']} ms",
        highlight=False,
    )
    console.print(
        f"drift: detected={drift.get('drift_detected')} share={drift.get('drift_share')} "
        f"on {drift.get('current_rows')} served rows (report: {drift.get('report_html')})",
        highlight=False,
    )
    daily, gate = summary["daily"], summary["daily"]["gate"]
    out = Path(summary["summary_path"]).parent

    def short(uri: str) -> str:  # a path under the demo's output, relative to it
        return os.path.relpath(uri, out) if Path(uri).is_relative_to(out) else uri

    if daily["deployed"]:
        outcome = (
            f"[green]deployed[/green]: commit {daily['commit']} in {short(daily['gitops_repo'])}"
            f"; the dev overlay now serves {short(daily['served_uri'])} "
            f"(was {short(daily['served_uri_before'])})"
        )
    else:
        outcome = (
            f"[yellow]held[/yellow]: the dev overlay still serves {short(daily['served_uri'])}"
        )
    console.print(f"daily run: gate {'passed' if gate['passed'] else 'held'} ({gate['reason']})")
    console.print(outcome, highlight=False)
    console.print(f"summary JSON: {summary['summary_path']}", highlight=False)
    console.print(f"full log:     {summary['log']}", highlight=False)


def _serve_and_request(
    out: Path, config: Path, cfg: Config, student_dir: Path, sample_dir: Path, steps: StepConsole
) -> dict[str, Any]:
    request_log = out / "request_log"
    for old in request_log.glob("*.jsonl"):
        old.unlink()  # a rerun judges only its own requests
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with steps.step("start the server") as step:
        server = start_server(student_dir, config, port, request_log, out / "server.log")
        try:
            wait_ready(base, cfg.serve.model_name, server, timeout=180)
        except BaseException:
            stop_server(server)
            raise
        step["figure"] = f"ready at {base} (log: {out / 'server.log'})"
    try:
        with steps.step("V1 + V2 requests") as step:
            serving = send_requests(
                base, cfg.serve.model_name, logged_queries(sample_dir / "impressions.parquet")
            )
            serving["metrics_sample"] = [
                line
                for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines()
                if line.startswith("searchrel_requests_total")
            ]
            step["figure"] = (
                f"{serving['requests']} for {serving['queries']} logged queries, status "
                f"{serving['status_counts']}, p50 {serving['all_latency_ms']['p50']} ms, "
                f"p99 {serving['all_latency_ms']['p99']} ms"
            )
    finally:
        serving_exit = stop_server(server)
    return serving | {"server_exit_code": serving_exit}


def run_demo(out: Path, config: Path, console: Console | None = None) -> dict[str, Any]:
    """The whole loop; the console shows one line per step, ``<out>/demo.log`` the rest."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG_FILE
    log_path.unlink(missing_ok=True)
    try:
        with StepConsole(log_path, console) as steps:
            return _run_steps(out, config, log_path, steps)
    except Exception:
        terminal = console or Console(stderr=True)
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-FAILURE_TAIL:]
        terminal.print(f"[red]the demo failed[/red]; the last lines of {log_path}:")
        for line in tail:
            terminal.print(line, markup=False, highlight=False, soft_wrap=True)
        raise


def _run_steps(out: Path, config: Path, log_path: Path, steps: StepConsole) -> dict[str, Any]:
    # Imported here, inside the log's redirection: their import-time warnings go to the log.
    from searchrel.data.sample import build_sample
    from searchrel.demo_daily import run_daily
    from searchrel.drift.job import drift_job
    from searchrel.pipelines.run_local import run_local

    started = time.perf_counter()
    cfg = load_config(config)
    steps.console.print(
        f"searchrel demo: the relevance loop on the bundled sample; full log: {log_path}",
        highlight=False,
        soft_wrap=True,
    )
    steps.section("1/5 the relevance loop: a KFP pipeline under kfp.local")
    steps.pipeline_root = out / "pipeline"
    run = run_local(source="sample", config_path=config, pipeline_root=steps.pipeline_root)
    student_dir = Path(run["outputs"]["student"])
    features_dir = Path(run["outputs"]["features"])

    steps.section("2/5 the student on KServe's ModelServer (127.0.0.1)")
    sample_dir = out / "sample"
    build_sample(sample_dir)
    serving = _serve_and_request(out, config, cfg, student_dir, sample_dir, steps)

    steps.section("3/5 drift: what was served vs what the student trained on (Evidently)")
    with steps.step("drift check") as step:
        drift = drift_job(
            features_dir / "student_features.parquet", out / "request_log", out / "drift", cfg
        )
        step["figure"] = (
            f"drift {'detected' if drift.get('drift_detected') else 'not detected'} "
            f"(share {drift.get('drift_share')}) on {drift.get('current_rows')} served rows"
        )

    steps.section("4/5 a daily run: distil the last day, gate it, deploy through GitOps")
    steps.pipeline_root = out / "daily"
    daily = run_daily(out, config, sample_dir, Path(run["outputs"]["teacher"]), student_dir, steps)
    steps.section("5/5 summary")
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
        "serving": serving,
        "drift": drift,
        "daily": daily,
        "pipeline": run,
        "steps": steps.steps,
        "console_lines_before_summary": steps.lines + 1,  # + the title line
        "seconds": round(time.perf_counter() - started, 1),
        "summary_path": str(out / SUMMARY_FILE),
        "log": str(log_path),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print_summary(summary, steps.console)
    return summary
