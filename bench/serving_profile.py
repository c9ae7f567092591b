"""Where a scoring request's time goes inside the student server, stage by stage, in process
(no HTTP): parsing (JSON and the request checks), item lookup, featurization (with the query
encoder apart: cached or not), input assembly, the student FFN, the expected score and
metrics, encoding a sampled request for the request log (from its arrays, as the server does,
and row by row, as it did before, for the ratio), and serializing the answer.

    .venv/bin/python bench/serving_profile.py --run-dir runs/demo/pipeline/<run>

Writes bench/results/serving_profile.json: mean milliseconds per stage at 100 and 1,000
candidates. Queries repeat, as in traffic, so the encoder's cache answers most of them; the
uncached encoder time is measured on queries it has not seen.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.machine import machine_info  # noqa: E402
from bench.serving import newest_run  # noqa: E402
from searchrel.config import ServeConfig, load_config  # noqa: E402
from searchrel.features.pairs import assemble_inputs  # noqa: E402
from searchrel.request_log import ServedRequest, encode_rows, encode_served  # noqa: E402
from searchrel.scores import expected_score  # noqa: E402
from searchrel.serving.model import StudentModel  # noqa: E402


def profile(model: StudentModel, bodies: list[bytes]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}

    def timed(name: str, started: float) -> float:
        now = time.perf_counter()
        stages.setdefault(name, []).append((now - started) * 1000)
        return now

    for body in bodies:
        t = time.perf_counter()
        parsed = model.preprocess(orjson.loads(body))
        t = timed("parse_and_check", t)
        req = parsed.requests[0]
        rows, _ = model.store.rows_of(req.item_ids)
        t = timed("item_lookup", t)
        qvec = model.embedder.encode_query(req.query)
        t = timed("query_encoder_cached", t)
        feats = model.featurizer.featurize(req.query, rows, query_embedding=qvec)
        t = timed("featurize", t)
        x = assemble_inputs(feats.query_embedding, feats.item_embeddings, feats.scalars)
        t = timed("assemble_inputs", t)
        probs = model.student.predict_proba(x)
        t = timed("student_ffn", t)
        scores = expected_score(probs)
        t = timed("expected_score", t)
        served = ServedRequest(req.query, req.locale, req.item_ids, feats.query_embedding,
                               feats.scalars, probs, scores, model.version)  # fmt: skip
        t = time.perf_counter()
        encode_served(served)
        t = timed("request_log_encode_sampled", t)
        encode_rows(served.rows())
        t = timed("request_log_encode_row_by_row", t)
        answer = {"predictions": [{"item_ids": req.item_ids, "probs": probs.round(6).tolist(),
                                   "scores": scores.round(6).tolist()}]}  # fmt: skip
        orjson.dumps(answer)
        t = timed("serialize_answer", t)
        model._answer(parsed)  # the whole path as the server runs it (metrics, logging)
        timed("whole_request", t)
    return {name: round(float(np.mean(ms)), 3) for name, ms in stages.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run-dir", type=Path, help="a kfp.local run of the relevance loop")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving_profile.json")
    args = p.parse_args()
    run = args.run_dir or newest_run()
    student = run / "student-train" / "student"
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    item_ids = ids.to_pylist()
    impressions = next(run.glob("ingest/impressions*"))
    queries = sorted(set(pq.read_table(impressions).column("query").to_pylist()))
    model = StudentModel(student, ServeConfig(), load_config().features)
    model.load()
    rng = random.Random(0)
    result: dict[str, Any] = {
        "command": "python bench/serving_profile.py " + shlex.join(sys.argv[1:]),
        "machine": machine_info(),
        "run": str(run),
        "items_in_store": len(item_ids),
        "ms_per_request_by_candidates": {},
    }
    for n in (100, 1000):
        bodies = [
            orjson.dumps({"instances": [{"query": rng.choice(queries),
                                         "item_ids": rng.choices(item_ids, k=n)}]})
            for _ in range(args.requests)
        ]  # fmt: skip
        profile(model, bodies[:20])  # warm-up: caches, allocator
        result["ms_per_request_by_candidates"][str(n)] = profile(model, bodies)
    started = time.perf_counter()
    fresh = [f"an unseen query {i} {time.time_ns()}" for i in range(50)]
    for q in fresh:
        model.embedder.encode_query(q)
    result["query_encoder_uncached_ms"] = round((time.perf_counter() - started) * 1000 / 50, 3)
    model.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["ms_per_request_by_candidates"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
