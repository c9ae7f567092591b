"""The cluster request log: the server's CloudEvents reach a real receiver process on
127.0.0.1, which writes exactly what the local logger writes; bad events get a 400; a server
started with a request-log URL sends every request's rows there, the queued ones at SIGTERM too."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from searchrel.demo import free_port, stop_server
from searchrel.request_log import RequestLogger, read_request_log
from searchrel.schema import REQUEST_LOG
from searchrel.serving.cloudevents import EVENT_TYPE, CloudEventSink, receiver_handler
from tests.conftest import TINY_CONFIG
from tests.serving.conftest import RunningServer, start_student_server
from tests.serving.test_server_protocols import V1, V2, v2_body
from tests.test_request_log import LEVELS
from tests.test_request_log_served import LEVELS as SERVED_LEVELS
from tests.test_request_log_served import served_request


def test_rows_sent_as_cloudevents_are_read_back_like_the_local_log(
    receiver: tuple[str, Path], tmp_path: Path
) -> None:
    url, out = receiver
    requests = [served_request(["a", "b, c", 'd "e"'], seed=i) for i in range(5)]
    sink = CloudEventSink(url, "/models/searchrel-student", sample_rate=1.0)
    assert all(sink.log_served(served) for served in requests)
    sink.close()
    assert (sink.events_sent, sink.events_failed, sink.rows_sent) == (5, 0, 15)
    local = RequestLogger(tmp_path / "local", sample_rate=1.0)
    for served in requests:
        local.log_served(served)
    local.close()
    received = read_request_log(out, SERVED_LEVELS)
    expected = read_request_log(tmp_path / "local", SERVED_LEVELS)
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
    assert sink.log_served(served_request(["a"], seed=0))
    sink.close()
    assert sink.events_failed == 1 and sink.events_sent == 0


def test_a_request_the_sink_cannot_encode_is_counted_not_raised() -> None:
    sink = CloudEventSink(f"http://127.0.0.1:{free_port()}/", "/models/x", 1.0, timeout_s=0.5)
    good = served_request(["a", "b"], seed=0)
    bad = dataclasses.replace(good, scalars=good.scalars[:, :-1])  # a column short
    assert not sink.log_served(bad)
    sink.close()
    assert sink.events_failed == 1 and sink.events_sent == 0


@pytest.mark.slow
def test_a_server_with_a_request_log_url_sends_every_requests_rows_to_the_receiver(
    local_run: dict, server: RunningServer, receiver: tuple[str, Path], tmp_path: Path
) -> None:
    url, out = receiver
    base, proc = start_student_server(
        local_run["outputs"]["student"],
        "--request-log-url",
        url,
        "--config",
        str(TINY_CONFIG),
        log_file=tmp_path / "log",
    )
    ids = server.item_ids[:4]
    try:
        v1 = httpx.post(base + V1, json={"instances": [
            {"query": "sent as events", "locale": "de-DE", "item_ids": ids},
            {"query": "and another", "item_ids": ids[:2]},
        ]})  # fmt: skip
        v2 = httpx.post(base + V2, json=v2_body("over v2", ids[1:]))
        assert v1.status_code == v2.status_code == 200
    finally:
        assert stop_server(proc) == 0
    received = read_request_log(out, LEVELS)
    assert received.quarantine.num_rows == 0 and received.table.num_rows == 4 + 2 + 3
    assert received.table.schema.names == REQUEST_LOG.names
    local = read_request_log(server.request_log, LEVELS)  # the main server's local log
    assert received.table.schema.equals(local.table.schema)
    rows = received.table.to_pylist()
    sent = rows_of(rows, "sent as events")
    assert [r["item_id"] for r in sent] == ids and {r["locale"] for r in sent} == {"de-DE"}
    assert [r["expected_score"] for r in sent] == pytest.approx(
        v1.json()["predictions"][0]["scores"], abs=1e-4
    )
    assert {r["locale"] for r in rows_of(rows, "and another")} == {"und"}
    assert [r["item_id"] for r in rows_of(rows, "over v2")] == ids[1:]
    assert {r["model_version"] for r in rows} == {v1.json()["predictions"][0]["model_version"]}


def rows_of(rows: list[dict], query: str) -> list[dict]:
    return sorted((r for r in rows if r["query"] == query), key=lambda r: r["ts"])


@pytest.fixture
def slow_receiver(tmp_path: Path) -> Iterator[tuple[str, Path, list[float]]]:
    """The receiver's handler in this process, taking 0.4 s per event: (URL, directory, the
    times events were written)."""
    out, written = tmp_path / "slow", []
    logger = RequestLogger(out, sample_rate=1.0)

    class Slow(receiver_handler(logger)):  # type: ignore[misc]
        def do_POST(self) -> None:
            time.sleep(0.4)
            super().do_POST()
            written.append(time.monotonic())

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", out, written
    httpd.shutdown()
    httpd.server_close()
    logger.close()


@pytest.mark.slow
def test_sigterm_sends_the_request_log_events_still_queued(
    local_run: dict, server: RunningServer, slow_receiver: tuple[str, Path, list[float]]
) -> None:
    url, out, written = slow_receiver
    base, proc = start_student_server(
        local_run["outputs"]["student"], "--request-log-url", url, "--config", str(TINY_CONFIG)
    )
    n = 6
    try:
        for i in range(n):
            body = {"instances": [{"query": f"queued {i}", "item_ids": server.item_ids[:3]}]}
            assert httpx.post(base + V1, json=body).status_code == 200
        proc.send_signal(signal.SIGTERM)
        written_at_sigterm = len(written)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert written_at_sigterm < n, "every event was sent before SIGTERM: nothing was queued"
    logged = read_request_log(out, LEVELS)
    assert {r["query"] for r in logged.table.to_pylist()} == {f"queued {i}" for i in range(n)}
    assert logged.table.num_rows == 3 * n
