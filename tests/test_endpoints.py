"""Calling a model server: retries spread out, and never sooner than the server asks."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from types import SimpleNamespace

import pytest

from searchrel.endpoints import MAX_RETRY_AFTER_S, backoff_delay, retry_after_s


def test_retry_delays_are_jittered_exponential_and_at_least_retry_after() -> None:
    rng = random.Random(0)
    third = [backoff_delay(0.5, 3, rng=rng) for _ in range(50)]  # base 0.5 * 2**2 = 2 s
    assert all(1.0 <= d < 3.0 for d in third)
    assert len(set(third)) == 50  # workers that failed together spread out
    assert all(backoff_delay(0.5, 1, 7.0, rng) >= 7.0 for _ in range(20))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("86400", MAX_RETRY_AFTER_S), ("soon", None), (None, None)],
)
def test_retry_after_is_read_in_seconds_and_capped(header: str | None, seconds: float) -> None:
    response = SimpleNamespace(headers={"Retry-After": header} if header else {})
    assert retry_after_s(response) == seconds


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
    wait = retry_after_s(SimpleNamespace(headers={"Retry-After": when}))
    assert wait is not None and 27 <= wait <= 30
