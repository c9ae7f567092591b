"""Labeling freshness as Prometheus metrics: label-collect writes ``labels.prom`` (promtool-valid)
only when every shard was collected, and pushes the same gauges to a Pushgateway, grouped by
the pod's namespace, when one is configured."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from searchrel.atomic_files import write_parquet_atomic
from searchrel.labeling import shards as sh
from searchrel.labeling.collect import collect_shards
from searchrel.labeling.prometheus import TEXTFILE
from searchrel.tables import ContractError

DAYS = ("2026-11-01", "2026-11-02")


def fake_shard(task_dir: Path, date: str, shard: int, n: int, rows: int, failed: int) -> None:
    """A finished shard as a labeling task leaves it (collect checks records, not rows)."""
    pdir = task_dir / f"date={date}"
    digest = write_parquet_atomic(pa.table({"x": list(range(rows))}), sh.data_path(pdir, shard, n))
    sh.write_record(pdir, sh.ShardRecord(shard, n, date, "teacher-x", rows, failed, rows, 0,
                                         digest, 0.1))  # fmt: skip


def values(path: Path) -> dict[str, float]:
    text = path.read_text(encoding="utf-8")
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_whole_collection_writes_fresh_metrics_and_promtool_accepts_them(
    tmp_path: Path,
) -> None:
    tasks = [tmp_path / "task0", tmp_path / "task1"]
    for k, task in enumerate(tasks):
        for date in DAYS:
            fake_shard(task, date, k, 2, rows=5 + k, failed=k)
    before = dt.datetime.now(dt.UTC).timestamp()
    summary = collect_shards(tasks, tmp_path / "labels")
    got = values(tmp_path / "labels" / TEXTFILE)
    assert summary["prometheus"]["textfile"] == str(tmp_path / "labels" / TEXTFILE)
    assert got["searchrel_teacher_labels_last_success_timestamp_seconds"] >= int(before)
    assert got["searchrel_teacher_labels_rows"] == 2 * (5 + 6)
    assert got["searchrel_teacher_labels_failed_rows"] == 2
    newest = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()
    assert got["searchrel_teacher_labels_newest_date_timestamp_seconds"] == newest
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (CI installs Debian's prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], capture_output=True, text=True,
                           input=(tmp_path / "labels" / TEXTFILE).read_text())  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_missing_shard_writes_no_metrics_so_the_last_success_ages(tmp_path: Path) -> None:
    fake_shard(tmp_path / "task0", DAYS[0], 0, 2, rows=5, failed=0)
    with pytest.raises(ContractError, match="never labeled"):
        collect_shards([tmp_path / "task0"], tmp_path / "labels")
    assert not (tmp_path / "labels" / TEXTFILE).exists()


class _Pushgateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []

    def do_PUT(self) -> None:  # prometheus_client's push_to_gateway replaces the group: PUT
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append((self.command, self.path, body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    _Pushgateway.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Pushgateway.received
    finally:
        server.shutdown()


def test_the_metrics_are_pushed_grouped_by_the_pods_namespace(
    tmp_path: Path,
    pushgateway: tuple[str, list[tuple[str, str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = pushgateway
    monkeypatch.setenv("POD_NAMESPACE", "searchrel-dev")
    fake_shard(tmp_path / "task0", DAYS[0], 0, 1, rows=3, failed=0)
    summary = collect_shards([tmp_path / "task0"], tmp_path / "labels", pushgateway=url)
    assert summary["prometheus"]["pushed_to"] == url
    ((method, path, body),) = received
    assert method == "PUT"
    assert path == "/metrics/job/searchrel-label-collect/namespace/searchrel-dev"
    assert "searchrel_teacher_labels_rows 3.0" in body


def test_the_label_collect_step_pushes_to_the_configured_pushgateway(
    tmp_path: Path,
    pushgateway: tuple[str, list[tuple[str, str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`python -m searchrel label-collect --config` (what the KFP step runs) reads the URL."""
    import sys

    url, received = pushgateway
    monkeypatch.setenv("POD_NAMESPACE", "searchrel")
    fake_shard(tmp_path / "task0", DAYS[0], 0, 1, rows=4, failed=0)
    config = tmp_path / "c.yaml"
    config.write_text(f"label:\n  pushgateway: {url}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "label-collect", "--shard-dir", str(tmp_path / "task0"),
         "--out", str(tmp_path / "labels"), "--config", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ((_, path, body),) = received
    assert path.endswith("/namespace/searchrel") and "searchrel_teacher_labels_rows 4.0" in body


def test_an_unreachable_pushgateway_leaves_the_labels_and_the_textfile_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import CollectorRegistry

    from searchrel.pushmetrics import export_registry, set_gauge

    registry = CollectorRegistry()
    set_gauge(registry, "searchrel_test_gauge", "a test gauge", 1.0)
    with caplog.at_level("WARNING"):
        result = export_registry(registry, tmp_path / "x.prom", "http://127.0.0.1:9", "job")
    assert result["pushed_to"] is None and result["push_error"]
    assert "searchrel_test_gauge 1.0" in (tmp_path / "x.prom").read_text()
    assert "metrics not pushed to http://127.0.0.1:9" in caplog.text
