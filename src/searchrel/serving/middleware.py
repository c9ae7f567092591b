"""What the HTTP layer does for every request, before and after KServe sees it.

``Guard`` wraps KServe's whole app (outside Starlette's error middleware, so it also sees the
500s that middleware answers) and, for every HTTP request:

- refuses the model-repository routes (``/v2/repository/...``: load and unload a model) unless
  ``serve.model_repository_api`` is on: anyone who can reach the port could unload the model;
- answers the health probes itself (``/v2/health/live``, ``/v2/health/ready``): cheap, and
  ready only while the model is loaded and registered (KServe's own answer is always "ready");
- reads the body itself, on every route: larger than ``serve.max_body_bytes`` is a 413 (from
  the declared length, before anything is read, or while reading a chunked one), not complete
  within ``serve.body_timeout_s`` is a 408, and a client that hangs up before it has sent its
  body is counted as 499 ("client closed"), never passed on (KServe would answer a 500 and log
  two tracebacks);
- marks every 5xx answer ``Connection: close``: the server closes the connection after a 500,
  and a client that was not told so sends its next request into a closed socket;
- for the scoring routes (V1 predict, V2 infer), counts every request by protocol and status
  and times it, whatever answered it, and keeps the number in flight.

``strict_binary_decode`` wraps KServe's decoding of request bodies: any failure to decode
client bytes (a binary V2 tensor cut short, BYTES that are not UTF-8, a binary CloudEvent
nested too deep) is the client's, a 400 (``InvalidInput``) with a one-line reason, instead of
KServe's 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from searchrel.config import ServeConfig
from searchrel.serving import prometheus
from searchrel.serving.logs import escape_controls

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's status for a request the client gave up on before the answer
_V1 = re.compile(r"^/v1/models/[^/]+:predict$")
_V2 = re.compile(r"^/v2/models/[^/]+(?:/versions/[^/]+)?/infer$")
_REPOSITORY = re.compile(r"^/v2/repository(?:/|$)")
LIVE, READY = "/v2/health/live", "/v2/health/ready"


def protocol_of(path: str) -> str | None:
    """ "v1" or "v2" for a scoring path, None for everything else (health, metadata, metrics)."""
    if _V1.match(path):
        return "v1"
    if _V2.match(path):
        return "v2"
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before we see it
    return None


async def _answer(send: Send, status: int, content: dict[str, Any], close: bool = False) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Guard:
    def __init__(self, app: ASGIApp, cfg: ServeConfig, ready: Callable[[], bool]) -> None:
        self.app = app
        self.cfg = cfg
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        path = scope.get("path", "")
        if _REPOSITORY.match(path) and not self.cfg.model_repository_api:
            message = "the model repository API is turned off (serve.model_repository_api)"
            await _answer(send, 404, {"error": message})
            return
        if path == LIVE and scope.get("method") == "GET":
            await _answer(send, 200, {"live": True})
            return
        if path == READY and scope.get("method") == "GET":
            ready = self.ready()
            await _answer(send, 200 if ready else 503, {"ready": ready})
            return
        protocol = protocol_of(path)
        if protocol is None:
            await self._guarded(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        prometheus.IN_FLIGHT.labels(protocol=protocol).inc()
        try:
            await self._guarded(scope, receive, send, status)
        finally:
            prometheus.IN_FLIGHT.labels(protocol=protocol).dec()
            code = status[0]
            prometheus.REQUESTS.labels(protocol=protocol, status=str(code)).inc()
            prometheus.LATENCY.labels(protocol=protocol, status_class=f"{code // 100}xx").observe(
                time.perf_counter() - started
            )

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, status: list[int] | None = None
    ) -> None:
        status = status if status is not None else [500]
        try:
            body = await self._read_body(scope, receive)
        except _BodyProblem as problem:
            status[0] = problem.status
            if problem.status != CLIENT_CLOSED:
                await _answer(send, problem.status, {"error": str(problem)}, close=True)
            log.info(
                "%s %s: %s", scope.get("method"), escape_controls(scope.get("path", "")), problem
            )
            return
        answered = [False]
        replayed = [False]

        async def replay() -> Message:
            if not replayed[0]:
                replayed[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only the disconnect is left to wait for

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0], answered[0] = message["status"], True
                if message["status"] >= 500:
                    headers = [h for h in message.get("headers", ()) if h[0] != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, replay, watching_send)
        except Exception:
            if not answered[0]:
                raise  # uvicorn answers a 500 and logs the traceback
            # Answered already (Starlette's error middleware answers, logs through KServe's
            # handler, then re-raises): the traceback is in the log once, not twice.

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole request body, within the size limit and the deadline."""
        limit = self.cfg.max_body_bytes
        declared = _declared_length(scope)
        too_large = f"the request body is larger than {limit} bytes (serve.max_body_bytes)"
        if declared is not None and declared > limit:
            raise _BodyProblem(413, too_large)
        deadline = time.monotonic() + self.cfg.body_timeout_s
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise _BodyProblem(
                    408, f"the request body took longer than {self.cfg.body_timeout_s} s to arrive"
                ) from None
            if message["type"] == "http.disconnect":
                raise _BodyProblem(CLIENT_CLOSED, "the client closed the connection mid-request")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise _BodyProblem(413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def strict_binary_decode(decode: Callable[..., Any]) -> Callable[..., Any]:
    """``DataPlane.decode`` where any failure to decode is the client's: a 400
    (``InvalidInput``) with a one-line reason, instead of KServe's 500."""
    from kserve.errors import InvalidInput

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return decode(*args, **kwargs)
        except InvalidInput:
            raise
        except Exception as exc:
            text = str(exc)
            if "UTF-8" in text or isinstance(exc, UnicodeError):
                reason = "text in the request is not valid UTF-8"  # KServe's message echoes it
            elif isinstance(exc, KeyError):
                reason = f"missing field {escape_controls(str(exc)[:100])}"
            elif isinstance(exc, RecursionError):
                reason = "the request is nested too deeply"
            else:
                first = text.splitlines()[0][:200] if text.strip() else type(exc).__name__
                reason = escape_controls(first)
            raise InvalidInput(f"the request cannot be decoded: {reason}") from exc

    return wrapped
