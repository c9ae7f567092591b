"""The request log over the network, as CloudEvents: for clusters, where replicas have no disk
the drift job can read.

Like KServe's payload logger, the server posts CloudEvents (HTTP binary mode: ``ce-*``
headers, a JSON body) to a sink URL, from a background thread so that serving never waits on
it. Unlike KServe's logger, which posts the raw request and response, each event carries the
rows of ``schema.REQUEST_LOG`` (features included), so the receiver only appends them:
``searchrel request-log-receiver`` writes the same JSON Lines files as the local logger, and
``read_request_log`` and the drift job read them unchanged.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from searchrel.config import ServeConfig
from searchrel.request_log import RequestLogger, ServedRequest, encode_served

log = logging.getLogger(__name__)

EVENT_TYPE = "io.searchrel.request_log.v1"
MAX_EVENT_BYTES = 16 * 2**20  # one request's rows (at most serve.max_pairs of them)


class CloudEventSink:
    """``log_served`` like ``RequestLogger``'s: sampled per request, queued, posted in the
    background; a full queue or a failed post drops the event and counts it
    (never raises)."""

    def __init__(
        self,
        url: str,
        source: str,
        sample_rate: float,
        queue_size: int = 1000,
        timeout_s: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self.url, self.source, self.sample_rate = url, source, sample_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue(maxsize=queue_size)
        self._client = httpx.Client(timeout=timeout_s)
        self.events_sent = self.events_failed = self.events_dropped = self.rows_sent = 0
        self._worker = threading.Thread(target=self._run, name="request-log-sink", daemon=True)
        self._worker.start()

    def log_served(self, served: ServedRequest) -> bool:
        n_rows = len(served.item_ids)
        if not n_rows:
            return False
        with self._lock:
            if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
                return False
        try:
            lines = encode_served(served)
        except (TypeError, ValueError) as exc:  # never into the request path
            with self._lock:
                self.events_failed += 1
            log.warning("request-log sink: could not encode %d row(s): %s", n_rows, exc)
            return False
        body = ("[" + ",".join(line.rstrip("\n") for line in lines) + "]").encode()
        try:
            self._queue.put_nowait((served.request_id, body, n_rows))
        except queue.Full:
            with self._lock:
                self.events_dropped += 1
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event_id, body, n_rows = item
            headers = {
                "ce-specversion": "1.0",
                "ce-type": EVENT_TYPE,
                "ce-source": self.source,
                "ce-id": event_id,
                "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "content-type": "application/json",
            }
            ok = False
            for attempt in range(2):  # one retry: the sink restarting should not lose a batch
                try:
                    ok = self._client.post(self.url, content=body, headers=headers).is_success
                except httpx.HTTPError as exc:
                    log.debug("request-log sink: %s", exc)
                if ok:
                    break
                time.sleep(0.2 * (attempt + 1))
            with self._lock:
                if ok:
                    self.events_sent += 1
                    self.rows_sent += n_rows
                else:
                    self.events_failed += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (up to ``timeout_s``), then stop."""
        self._queue.put(None)
        self._worker.join(timeout_s)
        self._client.close()


def receiver_handler(logger: RequestLogger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_EVENT_BYTES:
                return self._reply(413, f"event larger than {MAX_EVENT_BYTES} bytes")
            raw = self.rfile.read(length)
            try:
                rows = self._rows(raw)
            except ValueError as exc:
                return self._reply(400, str(exc))
            logger.log(rows)
            return self._reply(202, f"{len(rows)} rows")

        def _rows(self, raw: bytes) -> list[dict[str, Any]]:
            content_type = self.headers.get("content-type", "")
            try:
                payload = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"body is not JSON: {exc}") from exc
            if content_type.startswith("application/cloudevents+json"):  # structured mode
                if not isinstance(payload, dict):
                    raise ValueError("a structured CloudEvent must be a JSON object")
                event_type, payload = payload.get("type"), payload.get("data")
            else:  # binary mode
                if self.headers.get("ce-specversion") != "1.0":
                    raise ValueError("not a CloudEvent: ce-specversion 1.0 is missing")
                event_type = self.headers.get("ce-type")
            if event_type != EVENT_TYPE:
                raise ValueError(f"event type {event_type!r} is not {EVENT_TYPE}")
            if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
                raise ValueError("data must be a list of request-log rows")
            return payload

        def _reply(self, status: int, message: str) -> None:
            body = json.dumps({"status": status, "message": message}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def run_receiver(out_dir: Path, host: str, port: int) -> None:
    """Append every received row to JSON Lines files in ``out_dir`` until interrupted."""
    logger = RequestLogger.bounded(out_dir, ServeConfig(), sample_rate=1.0)  # servers sampled
    server = ThreadingHTTPServer((host, port), receiver_handler(logger))
    log.info("request-log receiver on http://%s:%d -> %s", host, port, out_dir)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        logger.close()
