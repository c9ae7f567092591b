"""The deploy gate: the candidate student against the one being served, on the same held-out
human judgments, scored the way the server scores them.

Both bundles go through ``StudentModel.score`` (each with its own item store and embedder), so
bundles built with different feature versions are still compared fairly; items a bundle has
never seen are scored from their text as inline items. A handful of held-out queries cannot
tell a difference in the fourth decimal from luck, so the decision is statistical: a paired
bootstrap over the held-out queries (``searchrel.student.compare``) holds the candidate only
when it trails the serving model by more than ``gate.max_regression`` with
``gate.confidence``; a candidate that is not worse, within the noise, deploys. With nothing
served yet the candidate passes on its own, and with too few held-out queries it fails (a gate
that cannot see must not open).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from searchrel.config import Config, ConfigError
from searchrel.gitops import GATE_FILE
from searchrel.model_source import local_model_dir
from searchrel.serving.model import StudentModel
from searchrel.serving.protocol import INLINE_FIELDS, ScoringRequest
from searchrel.splits import split_of
from searchrel.student.compare import (
    UnknownMetricError,
    check_metric,
    metric_value,
    paired_bootstrap,
)
from searchrel.tables import read_table

log = logging.getLogger(__name__)


def held_out_judgments(judgments_path: Path, cfg: Config) -> pd.DataFrame:
    """The test-split human judgments: queries neither model trained on."""
    judgments = read_table(judgments_path, "judgments", cfg.data.levels).table.to_pandas()
    test = judgments[[split_of(q, cfg.data) == "test" for q in judgments["query"]]]
    return test.reset_index(drop=True)


def _inline(items: pd.DataFrame) -> dict[str, dict[str, Any]]:
    fields = [f for f in INLINE_FIELDS if f in items.columns]
    out: dict[str, dict[str, Any]] = {}
    for row in items[["item_id", *fields]].to_dict("records"):
        out[row.pop("item_id")] = {
            k: (list(v) if isinstance(v, np.ndarray) else v)
            for k, v in row.items()
            if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
    return out


class Scored(NamedTuple):
    probs: npt.NDArray[np.float32]  # one row of K probabilities per held-out pair
    version: str  # the bundle's model version
    levels: int


def score_bundle(bundle: Path, held_out: pd.DataFrame, items: pd.DataFrame, cfg: Config) -> Scored:
    """Every held-out (query, item) through the bundle's own serving path."""
    model = StudentModel(bundle, cfg.serve, cfg.features)
    model.load()
    inline = _inline(items[items["item_id"].isin(held_out["item_id"])])
    probs = np.zeros((len(held_out), model.student.meta.levels), dtype=np.float32)
    for (query, locale), group in held_out.groupby(["query", "locale"], sort=False):
        ids = list(group["item_id"])
        request = ScoringRequest(str(query), str(locale), ids, inline={i: inline[i] for i in ids})
        probs[group.index.to_numpy()] = model.score(request)[0]
    return Scored(probs, model.version, model.student.meta.levels)


def gate(
    candidate: Path,
    serving: str | Path | None,
    items_path: Path,
    judgments_path: Path,
    out_dir: Path,
    cfg: Config,
) -> dict[str, Any]:
    """Compare the candidate with the serving bundle; write and return the decision."""
    g = cfg.gate
    held_out = held_out_judgments(judgments_path, cfg)
    items = read_table(items_path, "items").table.to_pandas()
    queries = held_out[["query", "locale"]].drop_duplicates().shape[0]
    try:
        check_metric(g.metric, cfg.data.levels)
    except UnknownMetricError as exc:
        raise ConfigError(str(exc)) from exc
    decision: dict[str, Any] = {
        "metric": g.metric,
        "max_regression": g.max_regression,
        "confidence": g.confidence,
        "held_out_rows": len(held_out),
        "held_out_queries": queries,
    }
    if queries < g.min_queries:
        decision |= {"passed": False, "reason": f"{queries} held-out queries, fewer than "
                     f"gate.min_queries={g.min_queries}"}  # fmt: skip
        return _write(decision, out_dir)
    labels = held_out["label"].to_numpy()
    new = score_bundle(candidate, held_out, items, cfg)
    decision["candidate_version"] = new.version
    if not serving:
        alone = metric_value(labels, new.probs, held_out["query"], held_out["locale"],
                             new.levels, g.metric)  # fmt: skip
        reason = "nothing is served yet: the first model deploys"
        if alone is None:
            reason = f"{g.metric} is undefined on the held-out set"
        decision |= {"candidate": alone, "serving": None, "passed": alone is not None,
                     "reason": reason}  # fmt: skip
        return _write(decision, out_dir)
    old = score_bundle(local_model_dir(serving, out_dir / "serving-bundle"), held_out, items, cfg)
    decision["serving_version"] = old.version
    try:
        c = paired_bootstrap(
            labels, new.probs, old.probs, held_out["query"], held_out["locale"], new.levels,
            g.metric, confidence=g.confidence, resamples=g.bootstrap_resamples, seed=g.seed,
        )  # fmt: skip
    except ValueError as exc:  # the metric has no value on these labels: nothing to decide on
        decision |= {"passed": False, "reason": str(exc)}
        return _write(decision, out_dir)
    worse = c.worse_beyond(g.max_regression)
    pct = f"{g.confidence:.0%}"
    verdict = (
        f"worse: even its {pct} upper bound {c.upper:+.5f} trails by more than the allowed "
        f"{g.max_regression}"
        if worse
        else f"not worse beyond the allowed {g.max_regression} with {pct} confidence "
        f"(upper bound {c.upper:+.5f})"
    )
    decision |= {
        "candidate": c.candidate,
        "serving": c.reference,
        "delta": round(c.delta, 6),
        "delta_lower": round(c.lower, 6),
        "delta_upper": round(c.upper, 6),
        "p_candidate_worse": round(c.p_worse, 4),
        "bootstrap_resamples": c.resamples,
        "passed": not worse,
        "reason": f"{g.metric} {c.candidate:.5f} vs serving {c.reference:.5f} ({c.delta:+.5f} "
        f"over {c.queries} queries): {verdict}",
    }
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
