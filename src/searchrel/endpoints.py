"""Calling a model server the user named (an LLM judge, a VLM captioner): failures, retries,
and offline mode.

Both backends send chat completions through ``huggingface_hub.InferenceClient`` and retry the
same failures: timeouts, connection errors, 408, 425, 429 and 5xx. ``classify`` turns an
exception into a short reason and whether to retry it; ``backoff_delay`` spaces the retries
(exponential, jittered, never sooner than a 429's or 503's Retry-After asks, capped at
``MAX_RETRY_AFTER_S``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
from typing import Any

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
RETRY_AFTER_STATUS = {429, 503}  # where a server's Retry-After says when to come back
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is cut to this: a pair never stalls a worker long


class EndpointError(Exception):
    """A request that failed; ``retryable`` says whether another attempt could succeed."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did


def classify(exc: Exception) -> EndpointError:
    """An exception from the client as a short reason and whether to retry it."""
    if isinstance(exc, EndpointError):
        return exc
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        wait = retry_after_s(response) if status in RETRY_AFTER_STATUS else None
        return EndpointError(f"http_{status}", status in RETRYABLE_STATUS, wait)
    name = type(exc).__name__.lower()
    if "timeout" in name or isinstance(exc, TimeoutError):
        return EndpointError("timeout", True)
    if "connect" in name or isinstance(exc, ConnectionError | OSError):
        return EndpointError("connection_error", True)
    return EndpointError(f"error:{type(exc).__name__}", False)


def retry_after_s(response: Any) -> float | None:
    """A response's Retry-After (delay-seconds or an HTTP date) in seconds, at most
    ``MAX_RETRY_AFTER_S``; None where it has none or one that cannot be read."""
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_delay(
    base: float, attempt: int, retry_after: float | None = None, rng: Any = random
) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): ``base * 2**(attempt - 1)`` times
    a random factor in [0.5, 1.5), so workers that failed together do not retry together; where
    the server sent Retry-After, that plus up to ``base`` of jitter, if it is longer."""
    delay = base * 2 ** (attempt - 1) * (0.5 + rng.random())
    if retry_after is not None:
        delay = max(delay, retry_after + base * rng.random())
    return delay


def let_endpoints_through_offline_mode() -> None:
    """Keep HF_HUB_OFFLINE for the Hub only: a judge is a server the user named.

    huggingface_hub's shared HTTP client refuses every request in offline mode, the judge's
    too, and air-gapped clusters set HF_HUB_OFFLINE so that no model is fetched from the Hub.
    The Hub's own host stays blocked.
    """
    from urllib.parse import urlparse

    from huggingface_hub import constants, get_session

    session = get_session()
    hooks = session.event_hooks
    if any(getattr(h, "_searchrel", False) for h in hooks.get("request", [])):
        return
    hub_host = urlparse(constants.ENDPOINT).hostname

    def wrap(original: Any) -> Any:
        def hook(request: Any) -> Any:
            if constants.is_offline_mode() and request.url.host != hub_host:
                return None
            return original(request)

        hook._searchrel = True  # type: ignore[attr-defined]
        return hook

    session.event_hooks = {**hooks, "request": [wrap(h) for h in hooks.get("request", [])]}
