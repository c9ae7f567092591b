"""What the HTTP layer does for every scoring request, before and after KServe sees it.

``InferenceAccounting`` wraps the whole app (a plain ASGI middleware) and, for the V1 predict
and V2 infer paths only:

- counts every request by protocol and HTTP status and times it, whatever answered it (our
  model, KServe's decoding, FastAPI's validation, an exception that became a 500), so that no
  5xx is invisible to Prometheus;
- keeps the number of requests in flight;
- refuses a body larger than ``max_body_bytes`` with a 413, from its declared length before
  anything is read, or while it is read when it comes chunked.

``strict_binary_decode`` wraps KServe's decoding of V2 bodies, binary-extension ones above all
(the ``inference-header-content-length`` header): KServe answers a body it cannot decode (BYTES
that are not UTF-8, a cut-off tensor, a missing field) with a 500; wrapped, a 400 that says so.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from searchrel.serving import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_V1 = re.compile(r"^/v1/models/[^/]+:predict$")
_V2 = re.compile(r"^/v2/models/[^/]+(?:/versions/[^/]+)?/infer$")


def protocol_of(path: str) -> str | None:
    """ "v1" or "v2" for a scoring path, None for everything else (health, metadata, metrics)."""
    if _V1.match(path):
        return "v1"
    if _V2.match(path):
        return "v2"
    return None


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a chunked body has passed the limit."""


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11) refuses such a request before we see it
    return None


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class InferenceAccounting:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = protocol_of(scope.get("path", "")) if scope["type"] == "http" else None
        if protocol is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.max_body_bytes
        too_large = f"the request body is larger than {limit} bytes (serve.max_body_bytes)"
        state = {"status": 500, "answered": False, "over": False, "received": 0}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise BodyTooLarge(too_large)
            return message

        async def watching_send(message: Message) -> None:
            if state["over"]:
                return  # the app's own answer to a body read that failed: ours goes instead
            if message["type"] == "http.response.start":
                state["status"], state["answered"] = message["status"], True
            await send(message)

        metrics.IN_FLIGHT.labels(protocol=protocol).inc()
        try:
            declared = _declared_length(scope)
            if declared is not None and declared > limit:
                state["status"] = 413
                await _send_error(send, 413, too_large)
                return
            with contextlib.suppress(BodyTooLarge):
                await self.app(scope, limited_receive, watching_send)
            if state["over"]:
                state["status"] = 413
                await _send_error(send, 413, too_large)
        except BaseException:
            if not state["answered"]:
                state["status"] = 500  # what the server's error middleware will answer
            raise
        finally:
            metrics.IN_FLIGHT.labels(protocol=protocol).dec()
            status = int(state["status"])
            metrics.REQUESTS.labels(protocol=protocol, status=str(status)).inc()
            metrics.LATENCY.labels(protocol=protocol, status_class=f"{status // 100}xx").observe(
                time.perf_counter() - started
            )


def strict_binary_decode(decode: Callable[..., Any]) -> Callable[..., Any]:
    """``DataPlane.decode_inference_request`` where any failure to decode is the client's: a
    400 (``InvalidInput``) with a one-line reason, instead of KServe's 500."""
    from kserve.errors import InvalidInput

    def wrapped(body: Any, headers: Any, model_name: str) -> Any:
        try:
            return decode(body, headers, model_name)
        except InvalidInput:
            raise
        except Exception as exc:
            text = str(exc)
            if "UTF-8" in text or isinstance(exc, UnicodeDecodeError):
                reason = "a BYTES input is not valid UTF-8 text"  # KServe's message echoes it
            elif isinstance(exc, KeyError):
                reason = f"missing field {str(exc)[:100]}"
            else:
                reason = text.splitlines()[0][:200] if text.strip() else type(exc).__name__
            raise InvalidInput(f"the V2 request cannot be decoded: {reason}") from exc

    return wrapped
