"""The student on KServe answers V1 and V2 on loopback, and says clearly what is wrong."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from searchrel.request_log import read_request_log
from tests.serving.conftest import MODEL, RunningServer

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


def test_sigterm_lets_in_flight_requests_finish(
    local_run: dict, tmp_path: Path, server: RunningServer
) -> None:
    """A second server: requests in flight when SIGTERM arrives are answered, then it exits."""
    from concurrent.futures import ThreadPoolExecutor

    from searchrel.demo import free_port, wait_ready

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchrel.serving.server", "--model-dir",
         local_run["outputs"]["student"], "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, MODEL, proc, timeout=120)
    ids = (server.item_ids * 1000)[:1000]
    body = {"instances": [{"query": "red vase", "item_ids": ids}]}

    def call(_: int) -> int:
        return httpx.post(base + V1, json=body, timeout=60).status_code

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        time.sleep(0.3)  # all six are sent; the server works through them one by one
        proc.send_signal(signal.SIGTERM)
        statuses = [f.result() for f in futures]
    assert statuses == [200] * 6
    assert proc.wait(timeout=60) == 0


def test_inline_items_are_refused_unless_the_server_allows_them(server: RunningServer) -> None:
    body = {"instances": [{"query": "red vase", "item_ids": ["new-1"],
                           "items": [{"item_id": "new-1", "title": "a red vase"}]}]}  # fmt: skip
    r = httpx.post(server.base + V1, json=body)
    assert r.status_code == 400 and "inline" in r.json()["error"]


@pytest.fixture(scope="module")
def inline_server(local_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from searchrel.demo import free_port, stop_server, wait_ready

    work = tmp_path_factory.mktemp("inline")
    config = work / "serve.yaml"
    config.write_text("data:\n  levels: 5\nserve:\n  inline_items: true\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchrel.serving.server", "--model-dir",
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
