"""Drift detection on real data (issue 7): how often shifted windows are flagged, and how
often unshifted ones are (false alarms).

    .venv/bin/python bench/drift.py --repeats 20

CrowdFlower pairs get this repo's student features (MiniLM embeddings, BM25, text match); the
261 queries are grouped into ``--clusters`` topics by k-means on their embeddings. The
reference (the "training rows") is a sample of pairs from all topics but ``--held-out`` of
them, with a student trained on it for the predicted scores. Shifted windows: pairs of the
held-out topics (queries of categories the reference never saw). Unshifted windows: pairs of
the reference topics, disjoint from the reference sample. Each window goes through
``run_drift`` and ``decide`` (default DriftConfig: features or query embeddings trigger) with
no cooldown; the detection rate is over the shifted windows, the false-alarm rate over the
unshifted ones.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crowdflower_folds import load_crowdflower  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import DriftConfig, load_config, shared_dir  # noqa: E402
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS, find_crowdflower_csvs  # noqa: E402
from searchrel.drift.decide import decide  # noqa: E402
from searchrel.drift.report import run_drift  # noqa: E402
from searchrel.drift.verdict import Signal  # noqa: E402
from searchrel.features.embedder import Embedder  # noqa: E402
from searchrel.features.pairs import PairFeaturizer, assemble_inputs  # noqa: E402
from searchrel.features.store import ItemStore, build_item_store  # noqa: E402
from searchrel.schema import SCALAR_FEATURES  # noqa: E402
from searchrel.scores import expected_score  # noqa: E402
from searchrel.student.dataset import FeatureRows  # noqa: E402
from searchrel.student.train import fit_student  # noqa: E402

K = CROWDFLOWER_LEVELS


def _statistic(signal: Signal | None) -> float | None:
    return signal.statistic if signal is not None else None


def table(idx: np.ndarray, base: dict[str, Any], extra: dict[str, Any]) -> pa.Table:
    cols = {
        "query": [base["query"][i] for i in idx],
        "locale": [base["locale"][i] for i in idx],
        "query_embedding": [base["q"][i].tolist() for i in idx],
        **{n: base["s"][idx, k].astype(np.float32) for k, n in enumerate(SCALAR_FEATURES)},
    }
    return pa.table(
        {**cols, **{k: v[idx] if isinstance(v, np.ndarray) else v for k, v in extra.items()}}
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=20, help="windows of each kind")
    p.add_argument("--window", type=int, default=300, help="served rows per window")
    p.add_argument("--reference-rows", type=int, default=2000)
    p.add_argument("--clusters", type=int, default=6)
    p.add_argument("--held-out", type=int, default=2, help="topics absent from the reference")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_drift")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "drift.json")
    args = p.parse_args()
    started = time.perf_counter()
    csvs = find_crowdflower_csvs(shared_dir())
    if not csvs:
        print(f"skip: no CrowdFlower CSVs under {shared_dir()}/data/crowdflower")
        return 0
    data = load_crowdflower(csvs, args.work_dir)
    j = data.judgments.reset_index(drop=True)
    cfg = load_config(overrides={"data": {"levels": K}})
    embedder = Embedder.from_config(cfg.features)
    store_dir = args.work_dir / "item_store"
    if not (store_dir / "store.json").exists():
        build_item_store(data.items, None, embedder, cfg.features, store_dir)
    store = ItemStore(store_dir)
    rows = np.array([store.index[i] for i in j["item_id"]])
    q, iv, s = PairFeaturizer(store, embedder, cfg.features).featurize_many(list(j["query"]), rows)
    base = {"query": list(j["query"]), "locale": list(j["locale"]), "q": q, "s": s}

    from sklearn.cluster import KMeans

    queries = sorted(set(j["query"]))
    qvec = np.stack([q[j.index[j["query"] == qu][0]] for qu in queries])
    topic_of_query = dict(
        zip(
            queries,
            KMeans(args.clusters, random_state=args.seed, n_init=10).fit_predict(qvec),
            strict=True,
        )
    )
    topic = np.array([topic_of_query[qu] for qu in j["query"]])
    rng = np.random.default_rng(args.seed)
    sizes = np.bincount(topic, minlength=args.clusters)
    held = set(np.argsort(sizes)[: args.held_out].tolist())  # the smallest topics: "new"
    seen_idx = np.flatnonzero(~np.isin(topic, list(held)))
    new_idx = np.flatnonzero(np.isin(topic, list(held)))
    ref_idx = np.sort(rng.choice(seen_idx, args.reference_rows, replace=False))
    pool_idx = np.setdiff1d(seen_idx, ref_idx)

    onehot = np.eye(K, dtype=np.float32)[j["label"].to_numpy() - 1]
    x = assemble_inputs(q, iv, s)
    n_ref = len(ref_idx)
    empty = np.empty(n_ref, dtype=object)
    ref_rows = FeatureRows(
        x[ref_idx],
        onehot[ref_idx],
        np.ones(n_ref, np.float32),
        np.full(n_ref, "human", dtype=object),
        empty,
        empty,
        empty,
        empty,
        store.dim,
    )
    net, _, _ = fit_student(ref_rows, ref_rows, cfg.student.model_copy(update={"epochs": 20}), K)
    import torch

    with torch.inference_mode():
        probs = net(torch.from_numpy(x)).numpy()
    expected = expected_score(probs.astype(np.float32))  # what the server logs
    reference = table(ref_idx, base, {"target": pa.array(onehot[ref_idx].tolist())})

    drift_cfg = DriftConfig(cooldown_hours=0)
    outcomes: dict[str, list[dict[str, Any]]] = {"shifted": [], "unshifted": []}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, pool in (("shifted", new_idx), ("unshifted", pool_idx)):
            for r in range(args.repeats):
                idx = np.sort(rng.choice(pool, min(args.window, len(pool)), replace=False))
                current = table(idx, base, {"expected_score": expected})
                verdict = run_drift(reference, current, drift_cfg, Path(tmp) / f"{kind}{r}", seed=r)
                decision = decide(verdict, drift_cfg, Path(tmp) / f"state{kind}{r}.json")
                outcomes[kind].append(
                    {
                        "relabel": decision["relabel"],
                        "features": decision["features"],
                        "embeddings": decision["embeddings"],
                        "score": decision["score"],
                        "drift_share": _statistic(verdict.signal("features")),
                        "embedding_auc": _statistic(verdict.signal("embeddings")),
                    }
                )
                print(kind, r, outcomes[kind][-1], flush=True)

    def rate(kind: str, key: str) -> float:
        return float(np.mean([o[key] for o in outcomes[kind]]))

    result = {
        "command": "python bench/drift.py " + shlex.join(sys.argv[1:]),
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "drift_config": drift_cfg.model_dump(),
        "topics": {
            "sizes_in_pairs": sizes.tolist(),
            "held_out": sorted(int(h) for h in held),
            "held_out_pairs": len(new_idx),
            "reference_pairs": n_ref,
        },
        "detection_rate": rate("shifted", "relabel"),
        "false_alarm_rate": rate("unshifted", "relabel"),
        "by_signal": {
            kind: {sig: rate(kind, sig) for sig in ("features", "embeddings", "score")}
            for kind in outcomes
        },
        "goals": {
            "detection_ge_0.95": rate("shifted", "relabel") >= 0.95,
            "false_alarms_le_0.05": rate("unshifted", "relabel") <= 0.05,
        },
        "windows": outcomes,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: result[k] for k in ("detection_rate", "false_alarm_rate", "by_signal", "goals")},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
