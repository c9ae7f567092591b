"""drift_watch under kfp.local: a calm window holds; a drifted one passes the dsl.If gate and
relabels and distils a new student (the same steps as the relevance loop)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from searchrel.config import LabelConfig
from searchrel.pipelines.drift_watch import compile_drift_watch
from searchrel.pipelines.run_local import run_drift_watch_local
from searchrel.request_log import RequestLogger
from searchrel.schema import SCALAR_FEATURES
from tests.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow


def write_window(features_dir: Path, out: Path, shift: float) -> Path:
    """The training rows replayed as a served window; ``shift`` moves features and queries."""
    table = pq.read_table(features_dir / "student_features.parquet")
    rng = np.random.default_rng(0)
    rows = []
    for r in table.to_pylist():
        q = np.asarray(r["query_embedding"], dtype=np.float32)
        if shift:
            q = rng.normal(size=q.shape).astype(np.float32)
            q /= np.linalg.norm(q)
        probs = r["target"]
        rows.append({"ts": 1.7e9, "request_id": r["query"], "query": r["query"],
                     "locale": r["locale"], "item_id": r["item_id"], "query_embedding": q,
                     **{n: float(r[n]) * (1 + shift) + shift for n in SCALAR_FEATURES},
                     "probs": probs, "expected_score": float(np.dot(np.arange(1, 6), probs)),
                     "model_version": "student-test"})  # fmt: skip
    logger = RequestLogger(out, 1.0)
    logger.log(rows)
    logger.close()
    return out


def test_a_calm_window_holds_and_a_drifted_one_relabels_a_new_student(
    local_run: dict, tmp_path: Path
) -> None:
    features = Path(local_run["outputs"]["features"])
    run_dir = features.parent.parent
    inputs = {
        "reference_uri": str(features),
        "state_path": str(tmp_path / "drift_state.json"),
        "teacher_uri": str(run_dir / "teacher-train" / "teacher"),
        "items_uri": str(run_dir / "ingest" / "items"),
        "judgments_uri": str(run_dir / "ingest" / "judgments"),
        "impressions_uri": str(run_dir / "ingest" / "impressions"),
    }
    calm_root = tmp_path / "calm"
    run_drift_watch_local({**inputs, "requests_dir": str(write_window(
        features, tmp_path / "calm_log", 0.0))}, TINY_CONFIG, calm_root)  # fmt: skip
    (verdict,) = calm_root.glob("*/drift-check/report/drift.json")
    assert json.loads(verdict.read_text())["decision"]["relabel"] is False
    assert not list(calm_root.glob("*/student-train"))

    drift_root = tmp_path / "drifted"
    run_drift_watch_local({**inputs, "requests_dir": str(write_window(
        features, tmp_path / "drift_log", 2.0))}, TINY_CONFIG, drift_root)  # fmt: skip
    (verdict,) = drift_root.glob("*/drift-check/report/drift.json")
    decision = json.loads(verdict.read_text())
    assert decision["drift_detected"] and decision["decision"]["relabel"] is True
    (student,) = drift_root.glob("*/student-train/student")
    assert (student / "student.pt2").is_file()
    assert (verdict.parent / "drift.prom").is_file()
    assert json.loads((tmp_path / "drift_state.json").read_text())["signals"]


def test_drift_watch_compiles_with_its_gate_and_gpu_labeling(tmp_path: Path) -> None:
    compiled = compile_drift_watch(tmp_path / "dw.yaml", None, LabelConfig(shards=2))
    spec, platform = yaml.safe_load_all(Path(compiled).read_text())
    gate = next(t for n, t in spec["root"]["dag"]["tasks"].items() if n.startswith("condition"))
    assert gate["triggerPolicy"]["condition"].endswith("== 'relabel'")
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "nodeSelector" in kube["exec-label-shard"]
    assert not spec["root"]["dag"]["tasks"]["drift-check"]["cachingOptions"].get("enableCache")
