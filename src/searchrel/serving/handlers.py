"""Answers to the exceptions that mean a client's mistake: the status, a JSON ``error`` that
says what is wrong, and one log line at INFO, escaped (KServe's own handlers log a full
traceback at ERROR for each). Server errors keep KServe's handler and its traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from searchrel.serving.logs import escape_controls

log = logging.getLogger(__name__)


def _client_error(request: Any, status: int, message: str) -> JSONResponse:
    message = escape_controls(message)
    log.info("%d %s %s: %s", status, request.method, escape_controls(request.url.path), message)
    return JSONResponse(status_code=status, content={"error": message})


async def invalid_input(request: Any, exc: Exception) -> JSONResponse:
    return _client_error(request, 400, str(exc))


async def model_not_found(request: Any, exc: Exception) -> JSONResponse:
    return _client_error(request, 404, str(exc)[:300])


async def model_not_ready(request: Any, exc: Exception) -> JSONResponse:
    # Not the client's fault, but no bug either: readiness already tells the orchestrator.
    return _client_error(request, 503, str(exc)[:300])


async def not_implemented(request: Any, exc: Exception) -> JSONResponse:
    return _client_error(request, 501, str(exc)[:300] or "not implemented by this model")


async def request_validation(request: Any, exc: Any) -> JSONResponse:
    """A body that does not fit the V2 schema: 400 naming the fields, never echoing values.

    FastAPI's own handler answers 422 with the offending input inside; an input such as
    Infinity cannot be written as JSON, and the request then ends in a 500.
    """
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg', 'invalid')}"
        for e in exc.errors()[:5]
    ]
    return _client_error(request, 400, "; ".join(problems))
