"""The deploy gate: the candidate student against the one being served, on the same held-out
human judgments, scored the way the server scores them.

Both bundles go through ``StudentModel.score`` (each with its own item store and embedder), so
bundles built with different feature versions are still compared fairly; items a bundle has
never seen are scored from their text as inline items. The candidate passes when its metric is
at least the serving model's minus ``gate.max_regression``; with nothing served yet it passes
on its own, and with too few held-out queries it fails (a gate that cannot see must not open).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrel import metrics
from searchrel.config import Config, ConfigError
from searchrel.gitops import GATE_FILE
from searchrel.serving import serving_model_module
from searchrel.splits import split_of
from searchrel.tables import read_table

log = logging.getLogger(__name__)


def held_out_judgments(judgments_path: Path, cfg: Config) -> pd.DataFrame:
    """The test-split human judgments: queries neither model trained on."""
    judgments = read_table(judgments_path, "judgments", cfg.data.levels).table.to_pandas()
    test = judgments[[split_of(q, cfg.data) == "test" for q in judgments["query"]]]
    return test.reset_index(drop=True)


def _inline(items: pd.DataFrame) -> dict[str, dict[str, Any]]:
    fields = [f for f in serving_model_module().INLINE_FIELDS if f in items.columns]
    out: dict[str, dict[str, Any]] = {}
    for row in items[["item_id", *fields]].to_dict("records"):
        out[row.pop("item_id")] = {
            k: (list(v) if isinstance(v, np.ndarray) else v)
            for k, v in row.items()
            if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
    return out


def score_bundle(
    bundle: Path, held_out: pd.DataFrame, items: pd.DataFrame, cfg: Config
) -> dict[str, Any]:
    """Every held-out (query, item) through the bundle's own serving path; metrics of the lot."""
    serving = serving_model_module()

    model = serving.StudentModel(bundle, cfg.serve, cfg.features)
    model.load()
    inline = _inline(items[items["item_id"].isin(held_out["item_id"])])
    probs = np.zeros((len(held_out), model.student.meta.levels), dtype=np.float32)
    for (query, locale), group in held_out.groupby(["query", "locale"], sort=False):
        ids = list(group["item_id"])
        request = serving.ScoringRequest(
            str(query), str(locale), ids, inline={i: inline[i] for i in ids}
        )
        probs[group.index.to_numpy()] = model.score(request)[0]
    result = metrics.evaluate(
        held_out["label"].to_numpy(),
        probs,
        list(held_out["query"]),
        list(held_out["locale"]),
        model.student.meta.levels,
    )
    result["model_version"] = model.version
    return result


def gate(
    candidate: Path,
    serving: str | Path | None,
    items_path: Path,
    judgments_path: Path,
    out_dir: Path,
    cfg: Config,
) -> dict[str, Any]:
    """Compare the candidate with the serving bundle; write and return the decision."""
    from searchrel.serving.server import local_model_dir

    held_out = held_out_judgments(judgments_path, cfg)
    items = read_table(items_path, "items").table.to_pandas()
    queries = held_out[["query", "locale"]].drop_duplicates().shape[0]
    name = cfg.gate.metric
    decision: dict[str, Any] = {
        "metric": name,
        "max_regression": cfg.gate.max_regression,
        "held_out_rows": len(held_out),
        "held_out_queries": queries,
    }
    if queries < cfg.gate.min_queries:
        decision |= {"passed": False, "reason": f"{queries} held-out queries, fewer than "
                     f"gate.min_queries={cfg.gate.min_queries}"}  # fmt: skip
        return _write(decision, out_dir)
    new = score_bundle(candidate, held_out, items, cfg)
    if name not in new:
        raise ConfigError(f"gate.metric {name!r} is not a metric (try ndcg_at_20, accuracy, qwk)")
    decision |= {"candidate": new[name], "candidate_version": new["model_version"]}
    if not serving:
        decision |= {"passed": new[name] is not None, "serving": None,
                     "reason": "nothing is served yet: the first model deploys"}  # fmt: skip
        return _write(decision, out_dir)
    old = score_bundle(local_model_dir(serving, out_dir / "serving-bundle"), held_out, items, cfg)
    decision |= {"serving": old[name], "serving_version": old["model_version"]}
    if new[name] is None or old[name] is None:
        decision |= {"passed": False, "reason": f"{name} is undefined on the held-out set"}
        return _write(decision, out_dir)
    delta = float(new[name]) - float(old[name])
    passed = delta >= -cfg.gate.max_regression
    decision |= {"delta": round(delta, 6), "passed": passed,
                 "reason": f"{name} {new[name]:.5f} vs serving {old[name]:.5f} "
                 f"({delta:+.5f}; allowed regression {cfg.gate.max_regression})"}  # fmt: skip
    return _write(decision, out_dir)


def _write(decision: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GATE_FILE).write_text(json.dumps(decision, indent=2) + "\n", encoding="utf-8")
    log.info("gate %s: %s", "passed" if decision["passed"] else "failed", decision["reason"])
    return decision


def gate_passed(out_dir: Path) -> bool:
    """Whether the decision in ``out_dir`` lets the candidate deploy (missing file: no)."""
    path = out_dir / GATE_FILE if out_dir.is_dir() else out_dir
    if not path.is_file():
        return False
    return bool(json.loads(path.read_text(encoding="utf-8")).get("passed"))
