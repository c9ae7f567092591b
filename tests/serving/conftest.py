"""A real KServe ModelServer on 127.0.0.1 serving the student from the kfp.local run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from searchrel.demo import free_port, stop_server, wait_ready

MODEL = "searchrel-student"


@dataclass
class RunningServer:
    base: str
    proc: subprocess.Popen[bytes]
    request_log: Path
    item_ids: list[str]
    log_file: Path


def start_student_server(
    model_dir: str, *args: str, log_file: Path | None = None, cwd: Path | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    """``searchrel.serving.server`` on a free loopback port, once it says it is ready."""
    port = free_port()
    cmd = [sys.executable, "-m", "searchrel", "serve", "--model-dir", model_dir,
           "--port", str(port), *args]  # fmt: skip
    if log_file is None:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    else:
        with log_file.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, MODEL, proc, timeout=120)
    except Exception:
        proc.kill()
        proc.wait()
        raise RuntimeError(log_file.read_text()[-3000:] if log_file else "no log") from None
    return base, proc


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the server's /metrics: (name, labels) -> value."""
    text = httpx.get(base + "/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture(scope="session")
def server(local_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    student = Path(local_run["outputs"]["student"])
    work = tmp_path_factory.mktemp("server")
    log_file = work / "server.log"
    config = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    base, proc = start_student_server(
        str(student), "--request-log", str(work / "request_log"), "--config", str(config),
        log_file=log_file,
    )  # fmt: skip
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    yield RunningServer(base, proc, work / "request_log", ids.to_pylist(), log_file)
    stop_server(proc)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``searchrel request-log-receiver`` on a free loopback port: (its URL, its directory)."""
    port, out = free_port(), tmp_path / "received"
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchrel", "request-log-receiver", "--out", str(out),
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url, out
    proc.terminate()
    proc.wait(timeout=10)
