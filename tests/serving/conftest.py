"""A real KServe ModelServer on 127.0.0.1 serving the student from the kfp.local run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from searchrel.demo import free_port, stop_server, wait_ready

MODEL = "searchrel-student"


@dataclass
class RunningServer:
    base: str
    proc: subprocess.Popen[bytes]
    request_log: Path
    item_ids: list[str]
    log_file: Path


@pytest.fixture(scope="session")
def server(local_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    student = Path(local_run["outputs"]["student"])
    work = tmp_path_factory.mktemp("server")
    port = free_port()
    log_file = work / "server.log"
    cmd = [
        sys.executable, "-m", "searchrel.serving.server",
        "--model-dir", str(student), "--port", str(port),
        "--request-log", str(work / "request_log"),
        "--config", str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"),
    ]  # fmt: skip
    with log_file.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, MODEL, proc, timeout=120)
    except Exception:
        proc.kill()
        raise RuntimeError(log_file.read_text()[-3000:]) from None
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    yield RunningServer(base, proc, work / "request_log", ids.to_pylist(), log_file)
    stop_server(proc)
