"""The cluster request log: the server's CloudEvents reach a real receiver process on
127.0.0.1, which writes exactly what the local logger writes; bad events get a 400."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from searchrel.demo import free_port
from searchrel.request_log import RequestLogger, read_request_log
from searchrel.serving.cloudevents import EVENT_TYPE, CloudEventSink
from tests.test_request_log import LEVELS, request_rows


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
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


def test_rows_sent_as_cloudevents_are_read_back_like_the_local_log(
    receiver: tuple[str, Path], tmp_path: Path
) -> None:
    url, out = receiver
    requests = [request_rows(f"r{i}", n_items=3, seed=i) for i in range(5)]
    sink = CloudEventSink(url, "/models/searchrel-student", sample_rate=1.0)
    assert all(sink.log(rows) for rows in requests)
    sink.close()
    assert (sink.events_sent, sink.events_failed, sink.rows_sent) == (5, 0, 15)
    local = RequestLogger(tmp_path / "local", sample_rate=1.0)
    for rows in requests:
        local.log(rows)
    local.close()
    received = read_request_log(out, LEVELS)
    expected = read_request_log(tmp_path / "local", LEVELS)
    assert received.quarantine.num_rows == 0 and received.table.num_rows == 15
    key = [("request_id", "ascending"), ("item_id", "ascending")]
    assert received.table.sort_by(key).equals(expected.table.sort_by(key))


def test_what_is_not_a_request_log_event_is_a_400(receiver: tuple[str, Path]) -> None:
    url, _ = receiver
    ce = {"ce-specversion": "1.0", "ce-type": EVENT_TYPE, "ce-source": "t", "ce-id": "1",
          "content-type": "application/json"}  # fmt: skip
    assert httpx.post(url, content=b"[{", headers=ce).status_code == 400
    assert httpx.post(url, content=b"[]", headers={**ce, "ce-type": "other"}).status_code == 400
    assert (
        httpx.post(url, content=b"[]", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert httpx.post(url, content=b'{"a": 1}', headers=ce).status_code == 400
    structured = {"specversion": "1.0", "type": EVENT_TYPE, "id": "2", "source": "t", "data": []}
    r = httpx.post(url, json=structured, headers={"content-type": "application/cloudevents+json"})
    assert r.status_code == 202


def test_a_dead_sink_counts_failures_and_never_raises() -> None:
    sink = CloudEventSink(f"http://127.0.0.1:{free_port()}/", "/models/x", 1.0, timeout_s=0.5)
    assert sink.log(request_rows("r0"))
    sink.close()
    assert sink.events_failed == 1 and sink.events_sent == 0
