"""The student on KServe answers V1 and V2 on loopback, and says clearly what is wrong."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
import torch

from searchrel.config import ServeConfig
from searchrel.request_log import read_request_log
from tests.serving.conftest import MODEL, RunningServer, scrape, start_student_server, value

pytestmark = pytest.mark.slow
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"


def v2_body(query: str, item_ids: list[str], locale: str | None = "en-US") -> dict:
    inputs = [{"name": "query", "datatype": "BYTES", "shape": [1], "data": [query]}]
    if locale is not None:
        inputs.append({"name": "locale", "datatype": "BYTES", "shape": [1], "data": [locale]})
    inputs.append(
        {"name": "item_ids", "datatype": "BYTES", "shape": [len(item_ids)], "data": item_ids}
    )
    return {"inputs": inputs}


def v2_binary_body(
    query: str | bytes, item_ids: Sequence[str | bytes]
) -> tuple[bytes, dict[str, str]]:
    """A V2 request in the binary tensor extension: a JSON header naming each tensor's byte
    size, then the tensors (BYTES: each element a little-endian u32 length, then its bytes)."""

    def raw(values: Sequence[str | bytes]) -> bytes:
        out = b""
        for v in values:
            data = v.encode() if isinstance(v, str) else v
            out += struct.pack("<I", len(data)) + data
        return out

    tensors = [("query", raw([query]), 1), ("item_ids", raw(item_ids), len(item_ids))]
    header = {"inputs": [{"name": name, "datatype": "BYTES", "shape": [n],
                          "parameters": {"binary_data_size": len(data)}}
                         for name, data, n in tensors]}  # fmt: skip
    head = json.dumps(header).encode()
    headers = {"inference-header-content-length": str(len(head)),
               "content-type": "application/octet-stream"}  # fmt: skip
    return head + b"".join(data for _, data, _ in tensors), headers


def test_v1_scores_every_item_in_the_order_sent(server: RunningServer) -> None:
    ids = server.item_ids[:7][::-1]
    r = httpx.post(
        server.base + V1,
        json={
            "instances": [{"query": "cozy living room ideas", "locale": "en-US", "item_ids": ids}]
        },
    )
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert pred["item_ids"] == ids
    assert len(pred["probs"]) == len(ids) and all(len(p) == 5 for p in pred["probs"])
    for probs, score in zip(pred["probs"], pred["scores"], strict=True):
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert score == pytest.approx(sum((k + 1) * p for k, p in enumerate(probs)), abs=1e-4)
        assert 1.0 <= score <= 5.0
    assert pred["model_version"].startswith("student-")


def test_v2_bytes_tensors_give_the_same_scores_as_v1(server: RunningServer) -> None:
    ids = server.item_ids[3:9]
    query = "chocolate cake recipe"
    v1 = httpx.post(
        server.base + V1, json={"instances": [{"query": query, "locale": "en-US", "item_ids": ids}]}
    ).json()["predictions"][0]
    r = httpx.post(server.base + V2, json=v2_body(query, ids))
    assert r.status_code == 200, r.text
    body = r.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probs"]["shape"] == [len(ids), 5]
    assert outputs["scores"]["data"] == pytest.approx(v1["scores"], abs=1e-5)
    assert body["model_version"] == v1["model_version"]


def test_v1_batches_several_queries_in_one_request(server: RunningServer) -> None:
    instances = [
        {"query": "wedding flowers", "locale": "en-GB", "item_ids": server.item_ids[:3]},
        {"query": "garten ideen", "locale": "de-DE", "item_ids": server.item_ids[3:5]},
    ]
    r = httpx.post(server.base + V1, json={"instances": instances})
    assert r.status_code == 200, r.text
    assert [len(p["scores"]) for p in r.json()["predictions"]] == [3, 2]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [{"item_ids": ["x"]}]}, "query"),
        ({"instances": [{"query": "  ", "item_ids": ["x"]}]}, "query"),
        ({"instances": [{"query": "a", "item_ids": []}]}, "item_ids"),
        ({"instances": [{"query": "a", "item_ids": "abc"}]}, "item_ids"),
        ({"instances": [{"query": "a", "item_ids": [1, 2]}]}, "strings"),
        ({"instances": [{"query": "a", "item_ids": ["no-such-item"]}]}, "unknown item"),
        ({"instances": [{"query": "a" * 10_000, "item_ids": ["x"]}]}, "longer than"),
        ({"instances": [{"query": "a", "item_ids": ["x"] * 5000}]}, "at most"),
        ({"instances": [{"query": "a", "locale": 5, "item_ids": ["x"]}]}, "locale"),
        ({"instances": [{"query": "a", "locale": ["en-US"], "item_ids": ["x"]}]}, "locale"),
        ({"instances": []}, "empty"),
        ({"rows": []}, "instances"),
        ([1, 2, 3], "instances"),
    ],
)
def test_v1_bad_input_is_a_400_that_says_what_is_wrong(
    server: RunningServer, body: object, needle: str
) -> None:
    r = httpx.post(server.base + V1, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_malformed_json_is_a_400_not_a_500(server: RunningServer) -> None:
    for headers in ({"content-type": "application/json"}, {}):
        r = httpx.post(server.base + V1, content=b"{not json", headers=headers)
        assert r.status_code == 400, r.text


def test_v2_bad_input_is_a_400(server: RunningServer) -> None:
    no_items = {"inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
    r = httpx.post(server.base + V2, json=no_items)
    assert r.status_code == 400 and "item_ids" in r.json()["error"]
    wrong_type = v2_body("a", server.item_ids[:2])
    wrong_type["inputs"][0] = {"name": "query", "datatype": "FP32", "shape": [1], "data": [1.0]}
    r = httpx.post(server.base + V2, json=wrong_type)
    assert r.status_code == 400 and "BYTES" in r.json()["error"]


def test_server_listens_on_loopback_only(server: RunningServer) -> None:
    # kserve pins psutil<6, where the method is still called connections().
    listening = [
        c.laddr
        for c in psutil.Process(server.proc.pid).connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening, "the server process listens on nothing"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_metrics_count_requests_by_status(server: RunningServer) -> None:
    httpx.post(server.base + V1, json={"instances": []})
    text = httpx.get(server.base + "/metrics").text
    assert 'searchrel_requests_total{protocol="v1",status="400"}' in text
    assert "searchrel_request_latency_seconds_bucket" in text
    assert "searchrel_model_info" in text
    encoder = "torch" if torch.cuda.is_available() else "onnxruntime"  # CPU: ONNX Runtime
    assert f'query_encoder="{encoder}"' in text


def test_every_scoring_request_is_counted_by_status_whatever_rejected_it(
    server: RunningServer,
) -> None:
    """Rejected before our model runs (KServe's JSON decoding, FastAPI's validation, the body
    limit) or by it (an unknown item): each lands in its status series, with its latency."""
    before = scrape(server.base)
    assert httpx.post(server.base + V1, content=b"{not json").status_code == 400
    assert httpx.post(server.base + V2, json={"inputs": "nope"}).status_code == 400
    unknown = {"instances": [{"query": "a", "item_ids": ["no-such-item"]}]}
    assert httpx.post(server.base + V1, json=unknown).status_code == 400
    body, headers = v2_binary_body("a", [b"\xff\xfe"])
    assert httpx.post(server.base + V2, content=body, headers=headers).status_code == 400
    assert raw_post(server.base, V1, b"x" * 100, content_length=10**9).startswith(b"HTTP/1.1 413")
    after = scrape(server.base)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("searchrel_requests_total", protocol="v1", status="400") == 2
    assert delta("searchrel_requests_total", protocol="v2", status="400") == 2
    assert delta("searchrel_requests_total", protocol="v1", status="413") == 1
    assert delta("searchrel_requests_total", status="500") == 0
    assert delta("searchrel_request_latency_seconds_count", status_class="4xx") == 5


def test_a_good_request_moves_the_candidate_score_and_cache_metrics(
    server: RunningServer,
) -> None:
    ids = server.item_ids[:6]
    body = {"instances": [{"query": f"metrics probe {time.time()}", "item_ids": ids}]}
    before = scrape(server.base)
    first = httpx.post(server.base + V1, json=body)
    middle = scrape(server.base)
    again = httpx.post(server.base + V1, json=body)  # the same query: a cache hit
    after = scrape(server.base)
    assert first.status_code == again.status_code == 200

    def delta(name: str, a: dict, b: dict, **labels: str) -> float:
        return value(b, name, **labels) - value(a, name, **labels)

    assert delta("searchrel_requests_total", before, middle, protocol="v1", status="200") == 1
    assert delta("searchrel_request_latency_seconds_count", before, middle,
                 protocol="v1", status_class="2xx") == 1  # fmt: skip
    assert delta("searchrel_candidates_per_request_count", before, middle) == 1
    assert delta("searchrel_candidates_per_request_sum", before, middle) == len(ids)
    scores = first.json()["predictions"][0]["scores"]
    assert delta("searchrel_score_count", before, middle) == len(ids)
    assert delta("searchrel_score_sum", before, middle) == pytest.approx(sum(scores), abs=1e-3)
    hit_ratio = "searchrel_query_cache_hit_ratio"
    assert 0.0 <= value(middle, hit_ratio) < value(after, hit_ratio) <= 1.0


def test_served_requests_reach_the_request_log_with_the_contract_schema(
    server: RunningServer,
) -> None:
    ids = server.item_ids[:4]
    r = httpx.post(
        server.base + V1,
        json={"instances": [{"query": "log me", "locale": "fr-FR", "item_ids": ids}]},
    )
    assert r.status_code == 200
    logged = read_request_log(server.request_log, 5)
    rows = [row for row in logged.table.to_pylist() if row["query"] == "log me"]
    assert [row["item_id"] for row in rows] == ids
    assert {row["locale"] for row in rows} == {"fr-FR"}
    assert rows[0]["expected_score"] == pytest.approx(
        r.json()["predictions"][0]["scores"][0], abs=1e-4
    )
    # Compact: the query embedding once per request, on its first row.
    assert rows[0]["query_embedding"] and all(row["query_embedding"] is None for row in rows[1:])


def test_a_logged_candidate_costs_a_compact_row(server: RunningServer) -> None:
    ids = (server.item_ids * 10)[:100]
    body = {"instances": [{"query": "compact rows", "item_ids": ids}]}
    assert httpx.post(server.base + V1, json=body).status_code == 200
    lines = [line for path in sorted(server.request_log.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()
             if '"query":"compact rows"' in line]  # fmt: skip
    assert len(lines) == 100
    # The first row carries the query embedding (a few KB); every other row only its own
    # features and scores: no copy of the embedding per candidate.
    assert max(len(line.encode()) for line in lines[1:]) < 1_000


def test_sigterm_lets_in_flight_requests_finish(
    local_run: dict, tmp_path: Path, server: RunningServer
) -> None:
    """A second server: requests in flight when SIGTERM arrives are answered, then it exits."""
    base, proc = start_student_server(local_run["outputs"]["student"])
    ids = (server.item_ids * 1000)[:1000]
    n = 8  # as much work as a request may ask: in flight at SIGTERM, done within the 10 s grace

    def call(i: int) -> int:
        queries = [f"red vase {i} {k} {time.time()}" for k in range(4)]  # serve.max_pairs
        body = {"instances": [{"query": q, "item_ids": ids} for q in queries]}
        return httpx.post(base + V1, json=body, timeout=60).status_code

    try:
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(call, i) for i in range(n)]
            deadline = time.monotonic() + 60
            while True:  # until the server has received all of them (answered or in flight)
                samples = scrape(base)
                in_flight = value(samples, "searchrel_requests_in_flight", protocol="v1")
                if in_flight + value(samples, "searchrel_requests_total", protocol="v1") >= n:
                    break
                assert time.monotonic() < deadline, "the server never received every request"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)  # they are scored one after another
            answered_at_sigterm = sum(f.done() for f in futures)
            statuses = [f.result() for f in futures]
        assert answered_at_sigterm < n, "no request was still in flight at SIGTERM"
        assert statuses == [200] * n
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_health_and_metrics_answer_while_a_long_request_is_scored(
    server: RunningServer,
) -> None:
    """Scoring runs off the event loop: probes and scrapes never wait for it."""
    cfg = ServeConfig()
    ids = (server.item_ids * 1000)[: cfg.max_candidates]
    n = cfg.max_pairs // cfg.max_candidates  # as much work as one request may ask for

    def call(k: int) -> httpx.Response:
        queries = [f"slow {k} {i} {time.time()}" for i in range(n)]  # new: not in the cache
        body = {"instances": [{"query": q, "item_ids": ids} for q in queries]}
        return httpx.post(server.base + V1, json=body, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(call, k) for k in range(8)]
        deadline = time.monotonic() + 60
        while value(scrape(server.base), "searchrel_requests_in_flight", protocol="v1") < 1:
            assert time.monotonic() < deadline, "the long requests never showed as in flight"
            time.sleep(0.02)
        started = time.monotonic()
        ready = httpx.get(server.base + f"/v2/models/{MODEL}/ready", timeout=10)
        live = httpx.get(server.base + "/v2/health/live", timeout=10)
        probe_s = time.monotonic() - started
        still_scoring = not all(f.done() for f in futures)
        results = [f.result() for f in futures]
    assert ready.status_code == 200 and live.status_code == 200
    assert still_scoring, "the probes only answered once scoring was over"
    assert probe_s < 2.0, f"probes took {probe_s:.2f}s while requests were scored"
    assert [r.status_code for r in results] == [200] * 8


def test_inline_items_are_refused_unless_the_server_allows_them(server: RunningServer) -> None:
    body = {"instances": [{"query": "red vase", "item_ids": ["new-1"],
                           "items": [{"item_id": "new-1", "title": "a red vase"}]}]}  # fmt: skip
    r = httpx.post(server.base + V1, json=body)
    assert r.status_code == 400 and "inline" in r.json()["error"]


@pytest.fixture(scope="module")
def inline_server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the inline server's config (serve.request_log) puts its request log."""
    return tmp_path_factory.mktemp("inline_log") / "request_log"


@pytest.fixture(scope="module")
def inline_server(
    local_run: dict, tmp_path_factory: pytest.TempPathFactory, inline_server_log: Path
) -> Iterator[str]:
    from searchrel.demo import free_port, stop_server, wait_ready

    work = tmp_path_factory.mktemp("inline")
    config = work / "serve.yaml"
    config.write_text(
        f"data:\n  levels: 5\nserve:\n  inline_items: true\n  request_log: {inline_server_log}\n"
        "  log_sample_rate: 1.0\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchrel", "serve", "--model-dir",
         local_run["outputs"]["student"], "--port", str(port), "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, MODEL, proc, timeout=120)
    yield base
    stop_server(proc)


def test_an_unknown_item_sent_with_its_text_scores_like_the_stored_item(
    inline_server: str, server: RunningServer, tiny_source: Path
) -> None:
    import pyarrow.parquet as pq

    items = {r["item_id"]: r for r in pq.read_table(tiny_source / "items.parquet").to_pylist()}
    known = server.item_ids[:3]
    twin = {k: items[known[1]].get(k) for k in
            ("title", "description", "caption", "board_titles", "engaged_queries",
             "link_title", "link_description")}  # fmt: skip
    body = {"instances": [{"query": "red vase", "locale": "en-US",
                           "item_ids": [known[0], "brand-new", known[2]],
                           "items": [{"item_id": "brand-new", **twin}]}]}  # fmt: skip
    r = httpx.post(inline_server + V1, json=body)
    assert r.status_code == 200, r.text
    got = r.json()["predictions"][0]
    plain = {"instances": [{"query": "red vase", "locale": "en-US", "item_ids": known}]}
    stored = httpx.post(inline_server + V1, json=plain).json()["predictions"][0]
    assert got["item_ids"] == [known[0], "brand-new", known[2]]
    assert got["scores"][0] == stored["scores"][0] and got["scores"][2] == stored["scores"][2]
    # Same text, same embedding and BM25; only the engagement differs (catalogue mean vs the
    # item's own history), so the twin's score is close to, not equal to, the stored item's.
    assert abs(got["scores"][1] - stored["scores"][1]) < 1.0
    missing = {"instances": [{"query": "red vase", "item_ids": ["nowhere"], "items": []}]}
    r = httpx.post(inline_server + V1, json=missing)
    assert r.status_code == 400 and "unknown item" in r.json()["error"]


def raw_post(base: str, path: str, body: bytes, content_length: int | None = None,
             chunked: bool = False) -> bytes:  # fmt: skip
    """One POST on a raw socket, reading the answer without sending the rest of the body: a
    ``content_length`` above ``len(body)``, or chunks with no final chunk."""
    host, port = base.removeprefix("http://").split(":")
    head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    if chunked:
        head += "transfer-encoding: chunked\r\n\r\n"
        step = 2**16
        payload = b"".join(
            f"{len(body[i : i + step]):x}\r\n".encode() + body[i : i + step] + b"\r\n"
            for i in range(0, len(body), step)
        )
    else:
        head += f"content-length: {content_length or len(body)}\r\n\r\n"
        payload = body
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode() + payload)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_v2_binary_tensors_score_like_json(server: RunningServer) -> None:
    ids = server.item_ids[2:7]
    body, headers = v2_binary_body("chocolate cake recipe", ids)
    r = httpx.post(server.base + V2, content=body, headers=headers)
    assert r.status_code == 200, r.text
    as_json = httpx.post(server.base + V2, json=v2_body("chocolate cake recipe", ids, None))
    scores = {o["name"]: o["data"] for o in r.json()["outputs"]}["scores"]
    assert scores == pytest.approx(
        {o["name"]: o["data"] for o in as_json.json()["outputs"]}["scores"], abs=1e-6
    )


def test_v2_binary_bytes_that_are_not_utf8_are_a_400(server: RunningServer) -> None:
    cases: list[tuple[str | bytes, list[str | bytes]]] = [
        ("a", [server.item_ids[0], b"\xff\xfe\xfd"]),
        (b"\xc3\x28", ["x"]),
    ]
    for query, ids in cases:
        body, headers = v2_binary_body(query, ids)
        r = httpx.post(server.base + V2, content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert "not valid UTF-8" in r.json()["error"]


def test_a_cut_off_v2_binary_body_is_a_400(server: RunningServer) -> None:
    body, headers = v2_binary_body("a", server.item_ids[:3])
    for cut, head in ((body[:-5], headers), (body, {**headers,
                      "inference-header-content-length": "oops"})):  # fmt: skip
        r = httpx.post(server.base + V2, content=cut, headers=head)
        assert r.status_code == 400, r.text
        assert r.json()["error"]


def test_a_v1_body_that_is_not_utf8_is_a_400(server: RunningServer) -> None:
    body = b'{"instances": [{"query": "\xff\xfe caf\xe9", "item_ids": ["x"]}]}'
    for headers in ({"content-type": "application/json"}, {}):
        r = httpx.post(server.base + V1, content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]


def test_v2_shape_must_match_the_data(server: RunningServer) -> None:
    body = v2_body("a", server.item_ids[:2])
    body["inputs"][-1]["shape"] = [7]
    r = httpx.post(server.base + V2, json=body)
    assert r.status_code == 400 and "shape [7]" in r.json()["error"], r.text
    body["inputs"][-1]["shape"] = [-1, -2]
    r = httpx.post(server.base + V2, json=body)
    assert r.status_code == 400 and "shape" in r.json()["error"], r.text
    body["inputs"][-1]["shape"] = [1, 2]  # a 2-D tensor of two ids is still two ids
    assert httpx.post(server.base + V2, json=body).status_code == 200


def test_a_huge_unknown_id_is_cut_short_in_the_error(server: RunningServer) -> None:
    huge = "z" * 2**20
    r = httpx.post(server.base + V1, json={"instances": [{"query": "a", "item_ids": [huge]}]})
    assert r.status_code == 400 and "unknown item" in r.json()["error"]
    assert len(r.content) < 1000 and "…" in r.json()["error"]


def test_too_many_instances_in_one_request_is_a_400_naming_the_limit(
    server: RunningServer,
) -> None:
    limit = ServeConfig().max_instances
    one = {"query": "a", "item_ids": server.item_ids[:1]}
    r = httpx.post(server.base + V1, json={"instances": [one] * (limit + 1)})
    assert r.status_code == 400 and "serve.max_instances" in r.json()["error"], r.text
    assert httpx.post(server.base + V1, json={"instances": [one] * limit}).status_code == 200


def test_too_many_pairs_in_one_request_is_a_400_naming_the_limit(
    server: RunningServer,
) -> None:
    cfg = ServeConfig()
    ids = (server.item_ids * 1000)[: cfg.max_candidates]
    n = cfg.max_pairs // cfg.max_candidates + 1  # each instance legal, the whole too much
    body = {"instances": [{"query": f"q{i}", "item_ids": ids} for i in range(n)]}
    r = httpx.post(server.base + V1, json=body)
    assert r.status_code == 400 and "serve.max_pairs" in r.json()["error"], r.text


@pytest.mark.parametrize("path", [V1, V2])
def test_a_body_over_the_size_limit_is_a_413_before_it_is_read(
    server: RunningServer, path: str
) -> None:
    limit = ServeConfig().max_body_bytes
    # Declared too large: answered at once, with the body never sent.
    answer = raw_post(server.base, path, b'{"instances": [', content_length=limit + 1)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Chunked, with no length declared: refused once the limit is passed, not at the end.
    answer = raw_post(server.base, path, b" " * (limit + 1), chunked=True)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert httpx.get(server.base + f"/v2/models/{MODEL}/ready").status_code == 200


def test_oversized_inline_items_are_a_400_that_says_which_field(inline_server: str) -> None:
    limit = ServeConfig().max_item_text_chars
    item = {"item_id": "new-1", "title": "a red vase"}
    cases = [
        ({**item, "description": "x" * (limit + 1)}, "'description' is longer than"),
        ({**item, "title": "t" * (limit + 1)}, "'title' is longer than"),
        ({**item, "board_titles": ["a", "b" * limit]}, "'board_titles' is longer than"),
        ({**item, "engaged_queries": ["q"] * 101}, "at most 100"),
        ({**item, "caption": 7}, "'caption' must be a string"),
    ]
    for inline, needle in cases:
        body = {"instances": [{"query": "red vase", "item_ids": ["new-1"], "items": [inline]}]}
        r = httpx.post(inline_server + V1, json=body)
        assert r.status_code == 400 and needle in r.json()["error"], (needle, r.text[:300])
    huge = {"item_id": "y" * 2**20}  # no title: the error names the id, cut short
    body = {"instances": [{"query": "red vase", "item_ids": ["new-1"], "items": [huge]}]}
    r = httpx.post(inline_server + V1, json=body)
    assert r.status_code == 400 and "title" in r.json()["error"] and len(r.content) < 1000


def test_the_request_log_directory_set_in_the_config_is_written(
    inline_server: str, inline_server_log: Path, server: RunningServer
) -> None:
    body = {"instances": [{"query": "logged by config", "item_ids": server.item_ids[:2]}]}
    assert httpx.post(inline_server + V1, json=body).status_code == 200
    rows = read_request_log(inline_server_log, 5).table.to_pylist()
    assert [r["item_id"] for r in rows if r["query"] == "logged by config"] == server.item_ids[:2]
