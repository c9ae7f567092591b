"""A closed-loop HTTP load generator, run as its own process so it does not share the
server's interpreter: ``concurrency`` workers each send the next request when the last answer
arrives, for ``seconds`` or ``requests``. Prints one JSON line: latencies and status counts.
A body is a JSON request body, or ``{"raw": text, "headers": {...}, "kind": name}`` sent as it
is (the status counts are then also given by kind: valid and malformed requests apart).

    python bench/load_client.py URL BODY.json --concurrency 8 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np


async def run(url: str, bodies: list[tuple[bytes, dict[str, str], str]], concurrency: int,
              seconds: float | None, requests: int | None) -> dict[str, object]:  # fmt: skip
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    by_tag: dict[str, Counter[str]] = {}
    sent = 0
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal sent
            while True:
                if requests is not None and sent >= requests:
                    return
                if seconds is not None and time.perf_counter() - started >= seconds:
                    return
                body, headers, tag = bodies[sent % len(bodies)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:  # a reset or a dropped connection
                    status = type(exc).__name__
                statuses[status] += 1
                by_tag.setdefault(tag, Counter())[status] += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        "statuses": dict(statuses),
        **(
            {"statuses_by_kind": {k: dict(v) for k, v in by_tag.items()}} if len(by_tag) > 1 else {}
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("bodies", type=Path, help="JSON list of request bodies (sent round-robin)")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float)
    p.add_argument("--requests", type=int)
    a = p.parse_args()
    json_type = {"content-type": "application/json"}
    bodies = [
        (b["raw"].encode("utf-8", "surrogatepass"), b["headers"], b["kind"])
        if isinstance(b, dict) and "raw" in b
        else (json.dumps(b).encode(), json_type, "valid")
        for b in json.loads(a.bodies.read_text())
    ]
    print(json.dumps(asyncio.run(run(a.url, bodies, a.concurrency, a.seconds, a.requests))))


if __name__ == "__main__":
    main()
