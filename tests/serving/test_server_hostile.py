"""The real server in front of a hostile client: no admin route open, no 5xx for bad input,
every body and connection bounded, the log not forgeable, a client error one log line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from searchrel.config import ServeConfig
from tests.serving.conftest import MODEL, RunningServer, scrape, value
from tests.serving.test_server_protocols import V1, V2, raw_post

pytestmark = pytest.mark.slow
EXPLAIN = f"/v1/models/{MODEL}:explain"
UNLOAD = f"/v2/repository/models/{MODEL}/unload"
LOAD = f"/v2/repository/models/{MODEL}/load"
CLOUDEVENT = {"ce-specversion": "1.0", "ce-type": "io.example.request", "ce-source": "/test",
              "ce-id": "1", "ce-contenttype": "application/json",
              "content-type": "application/json"}  # fmt: skip
DEEP = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HUGE_INT = b'{"instances": [{"query": "q", "item_ids": [' + b"9" * 5000 + b"]}]}"


@dataclass
class Operated:
    base: str
    proc: subprocess.Popen[bytes]
    log_file: Path


@pytest.fixture(scope="module")
def operated(local_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    """A server whose operator turned the repository API on and set short timeouts and a small
    connection cap, so they can be seen to act."""
    from searchrel.demo import free_port, stop_server, wait_ready

    work = tmp_path_factory.mktemp("operated")
    config = work / "serve.yaml"
    config.write_text(
        "data:\n  levels: 5\nserve:\n  model_repository_api: true\n  header_timeout_s: 1.0\n"
        "  body_timeout_s: 1.0\n  max_connections: 6\n"
    )
    port, log_file = free_port(), work / "server.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "searchrel", "serve", "--model-dir",
             local_run["outputs"]["student"], "--port", str(port), "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, MODEL, proc, timeout=120)
    yield Operated(base, proc, log_file)
    stop_server(proc)


def score(base: str, ids: list[str], client: httpx.Client | None = None) -> httpx.Response:
    body = {"instances": [{"query": "red vase", "item_ids": ids}]}
    return (client or httpx).post(base + V1, json=body, timeout=30)  # type: ignore[attr-defined]


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        pass
    return True, got


def log_text(path: Path) -> str:
    time.sleep(0.3)  # the server's stderr reaches the file a moment after the answer
    return path.read_text(encoding="utf-8", errors="replace")


# ---- 1. the model-repository API ----


def test_the_model_repository_api_is_off_unless_turned_on(server: RunningServer) -> None:
    for path in (UNLOAD, LOAD):
        r = httpx.post(server.base + path)
        assert r.status_code == 404 and "serve.model_repository_api" in r.json()["error"]
    assert score(server.base, server.item_ids[:3]).status_code == 200
    assert httpx.get(server.base + "/v2/health/ready").status_code == 200


def test_readiness_is_false_while_the_model_is_unloaded(
    operated: Operated, server: RunningServer
) -> None:
    ids = server.item_ids[:3]
    assert httpx.post(operated.base + UNLOAD).status_code == 200
    try:
        assert httpx.get(operated.base + "/v2/health/ready").status_code == 503
        assert score(operated.base, ids).status_code == 404
    finally:
        assert httpx.post(operated.base + LOAD).status_code == 200
    assert httpx.get(operated.base + "/v2/health/ready").status_code == 200
    assert score(operated.base, ids).status_code == 200


# ---- 3. client input never reaches a 5xx, and never costs the next request its connection ----


def test_malformed_structure_through_every_decoder_is_a_400(server: RunningServer) -> None:
    """Deep nesting and huge integers through the non-JSON fallback parser and through
    binary CloudEvents; each followed on the same connection by a valid request."""
    cases = [
        (V1, DEEP, {"content-type": "text/plain"}),
        (V1, HUGE_INT, {"content-type": "text/plain"}),
        (V1, DEEP, {}),
        (V1, DEEP, CLOUDEVENT),
        (V1, HUGE_INT, CLOUDEVENT),
        (V1, DEEP, {**CLOUDEVENT, "ce-contenttype": "text/plain"}),
        (V2, DEEP, {"content-type": "application/json"}),
        (V2, HUGE_INT, {"content-type": "application/json"}),
    ]
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for path, body, headers in cases:
            r = client.post(path, content=body, headers=headers)
            assert 400 <= r.status_code < 500, (path, headers, r.status_code, r.text[:200])
            assert score(server.base, server.item_ids[:2], client).status_code == 200


def lone_surrogate_bodies(ids: list[str]) -> list[tuple[str, bytes]]:
    bad = "\ud800x"
    v1 = [
        {"instances": [{"query": bad, "item_ids": ids}]},
        {"instances": [{"query": "q", "locale": bad, "item_ids": ids}]},
        {"instances": [{"query": "q", "item_ids": [*ids, bad]}]},
    ]
    v2 = [
        {"id": bad, "inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": ["q"]},
                               {"name": "item_ids", "datatype": "BYTES", "shape": [1],
                                "data": ids[:1]}]},
        {"inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": [bad]},
                    {"name": "item_ids", "datatype": "BYTES", "shape": [2],
                     "data": [ids[0], bad]}]},
    ]  # fmt: skip
    # json.dumps writes a lone surrogate as the escape "\ud800", which JSON allows.
    return [(V1, json.dumps(b).encode()) for b in v1] + [(V2, json.dumps(b).encode()) for b in v2]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_lone_surrogates_in_any_field_are_a_400(server: RunningServer, content_type: str) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for path, body in lone_surrogate_bodies(server.item_ids[:2]):
            r = client.post(path, content=body, headers={"content-type": content_type})
            assert 400 <= r.status_code < 500, (path, body[:100], r.status_code, r.text[:200])
            assert score(server.base, server.item_ids[:2], client).status_code == 200


def test_a_valid_v2_request_id_is_echoed(server: RunningServer) -> None:
    query = {"name": "query", "datatype": "BYTES", "shape": [1], "data": ["red vase"]}
    items = {"name": "item_ids", "datatype": "BYTES", "shape": [1], "data": server.item_ids[:1]}
    body = {"id": "req-é-1", "inputs": [query, items]}
    r = httpx.post(server.base + V2, json=body)
    assert r.status_code == 200 and r.json()["id"] == "req-é-1"


# ---- 4. every route has a body limit ----


@pytest.mark.parametrize("path", [EXPLAIN, f"/v2/models/{MODEL}/ready", "/no/such/route"])
def test_every_route_refuses_a_body_over_the_limit_unread(server: RunningServer, path: str) -> None:
    limit = ServeConfig().max_body_bytes
    answer = raw_post(server.base, path, b"{", content_length=limit + 1)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    answer = raw_post(server.base, path, b" " * (limit + 1), chunked=True)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# ---- 5. log injection ----


def test_a_newline_in_the_url_forges_no_log_line(server: RunningServer) -> None:
    for path in (f"/v1/models/x%0AFORGED-{MODEL}:predict", "/v2/models/x%0d%0aFORGED/ready",
                 "/v2/models/x%0AFORGED/infer"):  # fmt: skip
        r = httpx.post(server.base + path, json={"instances": []})
        assert 400 <= r.status_code < 500
    lines = log_text(server.log_file).splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert [line for line in lines if "x\\nFORGED" in line or "x\\r\\nFORGED" in line]


# ---- 6. idle and slow connections, and the connection cap ----


def test_a_connection_that_sends_nothing_is_closed(operated: Operated) -> None:
    with connect(operated.base) as sock:
        closed, _ = closed_within(sock, 5)
    assert closed


def test_headers_sent_a_byte_at_a_time_are_cut_off(operated: Operated) -> None:
    head = (
        f"POST {V1} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + "x-pad: y\r\n" * 20
    )
    with connect(operated.base) as sock:
        started = time.monotonic()
        try:
            for ch in head.encode():
                sock.sendall(bytes([ch]))
                time.sleep(0.1)
                assert time.monotonic() - started < 8, "the trickled head was never cut off"
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, _ = closed_within(sock, 3)
    assert closed


def test_a_body_sent_a_byte_at_a_time_gets_a_408(operated: Operated) -> None:
    with connect(operated.base) as sock:
        sock.sendall(f"POST {V1} HTTP/1.1\r\nhost: x\r\ncontent-length: 200\r\n\r\n".encode())
        answer = b""
        try:
            for _ in range(15):  # 1.5 s: past the deadline, then read what the server said
                sock.sendall(b" ")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, answer = closed_within(sock, 5)
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_connections_beyond_the_cap_are_refused(operated: Operated) -> None:
    socks = [connect(operated.base) for _ in range(8)]
    try:
        r = httpx.get(operated.base + f"/v2/models/{MODEL}", timeout=5)
        assert r.status_code == 503
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    assert httpx.get(operated.base + f"/v2/models/{MODEL}", timeout=5).status_code == 200


# ---- 7. a client that hangs up mid-body ----


def test_a_client_that_hangs_up_mid_body_is_counted_as_499_not_500(server: RunningServer) -> None:
    before = scrape(server.base)
    for _ in range(3):
        with connect(server.base) as sock:
            sock.sendall(
                f"POST {V1} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{{".encode()
            )
            time.sleep(0.05)
    time.sleep(0.5)
    after = scrape(server.base)
    grew = {s: value(after, "searchrel_requests_total", protocol="v1", status=s)
            - value(before, "searchrel_requests_total", protocol="v1", status=s)
            for s in ("499", "500")}  # fmt: skip
    assert grew == {"499": 3, "500": 0}


# ---- 8. a client error is one log line ----


def test_a_client_error_is_one_log_line_without_a_traceback(server: RunningServer) -> None:
    marker = f"no-such-item-{time.time_ns()}"
    before = log_text(server.log_file).count("Traceback")
    for _ in range(5):
        assert score(server.base, [marker]).status_code == 400
    assert httpx.post(server.base + "/v1/models/nope:predict", json={}).status_code == 404
    text = log_text(server.log_file)
    assert text.count("Traceback") == before
    lines = [line for line in text.splitlines() if marker in line]
    assert len(lines) == 5 and all(" ERROR " not in line for line in lines), lines
