"""The student on KServe under load (issues 6 and 18): latency by candidate count (100 and
1,000 in the headline), throughput by concurrency, health-probe latency while 16 clients send
100-candidate requests, request-log bytes per request, a mixed run of valid and malformed
requests (no 5xx, no valid request reset), a sustained run with no 5xx, and the teacher on the
same pairs.

    .venv/bin/python bench/serving.py                # uses the newest `make demo` run
    .venv/bin/python bench/serving.py --run-dir runs/demo/pipeline/<run>

The server is `searchrel serve` on 127.0.0.1 (its own process); the load comes from
`bench/load_client.py` (another process, closed loop, keep-alive connections), on the same
2-core machine, so client and server share the cores. Queries and candidate items come from the
demo's impression log and item store. The teacher (the same run's, on CPU, fp32) scores the
100-candidate requests' pairs in the same run for the student/teacher pairs-per-second ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402

from bench.machine import machine_info  # noqa: E402
from searchrel.demo import free_port, stop_server, wait_ready  # noqa: E402

MODEL = "searchrel-student"
V1 = f"/v1/models/{MODEL}:predict"


def newest_run() -> Path:
    runs = sorted((ROOT / "runs" / "demo" / "pipeline").glob("searchrel-relevance-loop-*"))
    if not runs:
        raise SystemExit("no demo run under runs/demo/pipeline: run `make demo` first")
    return runs[-1]


def bodies(item_ids: list[str], queries: list[str], n_items: int, k: int, seed: int) -> list:
    rng = random.Random(seed)
    return [
        {"instances": [{"query": rng.choice(queries), "locale": "en-US",
                        "item_ids": rng.choices(item_ids, k=n_items)}]}
        for _ in range(k)
    ]  # fmt: skip


def load(url: str, payloads: list, concurrency: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payloads, fh)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load_client.py"), url, fh.name,
         "--concurrency", str(concurrency), "--seconds", str(seconds)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    Path(fh.name).unlink()
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def malformed_bodies(valid: list) -> list:
    """Hostile requests as ``load_client`` sends them raw: nesting thousands deep, huge
    integers, lone surrogates, through JSON, other content types and binary CloudEvents."""
    json_type = {"content-type": "application/json"}
    event = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/b", "ce-id": "1",
             "ce-contenttype": "application/json", "content-type": "application/json"}  # fmt: skip
    deep = '{"instances": ' + "[" * 50_000 + "]" * 50_000 + "}"
    huge = '{"instances": [{"query": "q", "item_ids": [' + "9" * 5000 + "]}]}"
    surrogate = '{"instances": [{"query": "\\ud800", "item_ids": ["a"]}]}'
    out = []
    for raw in (deep, huge, surrogate, "{", json.dumps(valid[0])[:-3]):
        for headers in (json_type, {"content-type": "text/plain"}, event):
            out.append({"raw": raw, "headers": headers, "kind": "malformed"})
    return out


def probes_under_load(base: str, url: str, payloads: list, seconds: float) -> dict[str, Any]:
    """``/v2/health/ready`` latency, a new connection each time (as the kubelet probes), every
    50 ms while 16 clients send ``payloads``."""
    import threading

    import numpy as np

    latencies: list[float] = []
    failures = 0
    stop = threading.Event()

    def probe() -> None:
        nonlocal failures
        while not stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(base + "/v2/health/ready", timeout=2) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            latencies.append(time.perf_counter() - started)
            failures += not ok
            time.sleep(0.05)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        scoring = load(url, payloads, 16, seconds)
    finally:
        stop.set()
        thread.join()
    ms = np.array(latencies) * 1000
    return {
        "probes": len(latencies),
        "probe_failures": failures,
        "probe_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "probe_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "probe_max_ms": round(float(ms.max()), 2),
        "scoring_under_probes": scoring,
    }


def request_log_bytes(log_dir: Path, served: float) -> dict[str, Any]:
    files = list(log_dir.glob("*.jsonl"))
    total = sum(p.stat().st_size for p in files)
    logged = {
        line[line.index('"request_id":"') + 14 :][:32]
        for p in files
        for line in p.read_text(encoding="utf-8").splitlines()
        if '"request_id":"' in line
    }
    return {
        "bytes": total,
        "requests_served": int(served),
        "requests_logged": len(logged),
        "bytes_per_served_request": round(total / max(served, 1), 1),
        "bytes_per_logged_request": round(total / max(len(logged), 1), 1),
    }


def teacher_pairs_per_s(teacher_dir: Path, items_path: Path, payloads: list) -> dict[str, Any]:
    from searchrel.teacher.model import TeacherScorer

    scorer = TeacherScorer(teacher_dir)
    items = {r["item_id"]: r for r in pq.read_table(items_path).to_pylist()}
    queries = [p["instances"][0]["query"] for p in payloads for _ in p["instances"][0]["item_ids"]]
    ids = [i for p in payloads for i in p["instances"][0]["item_ids"]]
    texts = scorer.item_texts([items[i] for i in ids])
    scorer.predict_proba(queries[:64], texts[:64])  # warm-up
    started = time.perf_counter()
    scorer.predict_proba(queries, texts)
    seconds = time.perf_counter() - started
    return {"pairs": len(ids), "seconds": round(seconds, 2),
            "pairs_per_s": round(len(ids) / seconds, 1)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run-dir", type=Path, help="a kfp.local run of the relevance loop")
    p.add_argument("--seconds", type=float, default=10.0, help="per latency/throughput point")
    p.add_argument("--sustained", type=float, default=60.0, help="the no-5xx run, seconds")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving.json")
    p.add_argument("--config", type=Path, help="the server's YAML config (default: built-in)")
    args = p.parse_args()
    run = args.run_dir or newest_run()
    student, teacher = run / "student-train" / "student", run / "teacher-train" / "teacher"
    items_path = next(run.glob("ingest/items*")) if list(run.glob("ingest/items*")) else None
    store = pq.read_table(student / "item_store" / "item_features.parquet")
    item_ids = store.column("item_id").to_pylist()
    impressions = next(run.glob("ingest/impressions*"))
    queries = sorted(set(pq.read_table(impressions).column("query").to_pylist()))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-log-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchrel", "serve", "--model-dir", str(student),
         "--port", str(port), "--request-log", str(log_dir),
         *(["--config", str(args.config)] if args.config else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    result: dict[str, Any] = {
        "command": "python bench/serving.py " + shlex.join(sys.argv[1:]),
        "machine": machine_info(),
        "run": str(run),
        "items_in_store": len(item_ids),
        "note": "client and server share the machine's cores",
    }
    try:
        wait_ready(base, MODEL, proc, timeout=180)
        # which runtime the server's query encoder runs on, as the server itself reports it
        info = re.search(
            r'query_encoder="([^"]+)"', urllib.request.urlopen(base + "/metrics").read().decode()
        )
        result["server_query_encoder"] = info.group(1) if info else None
        url = base + V1
        load(url, bodies(item_ids, queries, 10, 50, 0), 4, 3)  # warm-up: caches, allocator
        result["latency_by_candidates"] = {
            str(n): load(url, bodies(item_ids, queries, n, 200, n), 1, args.seconds)
            for n in (1, 10, 100, 1000)
        }
        hundred = bodies(item_ids, queries, 100, 200, 100)
        result["throughput_100_candidates"] = {
            str(c): load(url, hundred, c, args.seconds) for c in (1, 8, 32)
        }
        result["probes_under_load_16x100"] = probes_under_load(base, url, hundred, args.seconds)
        valid = bodies(item_ids, queries, 100, 60, 3)
        result["mixed_valid_and_malformed"] = {
            "concurrency": 8,
            **load(url, valid + malformed_bodies(valid), 8, args.seconds),
        }
        mixed = [b for n in (1, 10, 100, 300) for b in bodies(item_ids, queries, n, 50, 7 + n)]
        result["sustained"] = {"concurrency": 8, **load(url, mixed, 8, args.sustained)}
        metrics = subprocess.run(["curl", "-s", base + "/metrics"], capture_output=True,
                                 text=True).stdout  # fmt: skip
        counted = [line for line in metrics.splitlines()
                   if line.startswith("searchrel_requests_total{")]  # fmt: skip
        result["server_5xx_counted"] = sum(
            float(line.rsplit(" ", 1)[1]) for line in counted if 'status="5' in line
        )
        served = sum(float(line.rsplit(" ", 1)[1]) for line in counted if 'status="200"' in line)
        result["request_log"] = request_log_bytes(log_dir, served)
    finally:
        result["server_exit_code"] = stop_server(proc)
        shutil.rmtree(log_dir, ignore_errors=True)
    best = max(result["throughput_100_candidates"].values(), key=lambda r: r["requests_per_s"])
    student_pps = best["requests_per_s"] * 100
    if items_path is not None and teacher.exists():
        t = teacher_pairs_per_s(teacher, items_path, hundred[:20])
        result["teacher_same_pairs"] = t
        result["student_over_teacher_pairs_per_s"] = round(student_pps / t["pairs_per_s"], 1)
    result["student_pairs_per_s_best"] = round(student_pps, 1)
    lat100 = result["latency_by_candidates"]["100"]
    lat1000 = result["latency_by_candidates"]["1000"]
    sustained = result["sustained"]["statuses"]
    mixed_valid = result["mixed_valid_and_malformed"].get("statuses_by_kind", {}).get("valid", {})
    mixed_all = result["mixed_valid_and_malformed"]["statuses"]
    result["headline"] = {
        "p99_ms_100_candidates": lat100["p99_ms"],
        "p99_ms_1000_candidates": lat1000["p99_ms"],
        "probe_p99_ms_under_load": result["probes_under_load_16x100"]["probe_p99_ms"],
        "request_log_bytes_per_served_request": result["request_log"]["bytes_per_served_request"],
    }
    result["goals"] = {
        "p99_100_candidates_le_10ms": lat100["p99_ms"] <= 10,
        "p99_1000_candidates_le_20ms": lat1000["p99_ms"] <= 20,
        "probe_p99_le_50ms_under_load": result["probes_under_load_16x100"]["probe_p99_ms"] <= 50,
        "mixed_run_no_5xx": not any(k.startswith("5") for k in mixed_all),
        "mixed_run_valid_all_200": set(mixed_valid) == {"200"},
        "student_ge_50x_teacher": result.get("student_over_teacher_pairs_per_s", 0) >= 50,
        "no_5xx_in_sustained": not any(k.startswith("5") for k in sustained)
        and all(k.isdigit() for k in sustained),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("headline", "goals")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
