"""The deploy gate on real bundles from the kfp.local run: both students scored through the
serving path on the same held-out human judgments; a worse candidate is held back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from searchrel.config import Config, load_config
from searchrel.student.gate import gate, gate_passed, held_out_judgments
from searchrel.student.train import train_student
from tests.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(local_run: dict) -> dict[str, Path]:
    run_dir = Path(local_run["outputs"]["features"]).parent.parent
    return {
        "student": Path(local_run["outputs"]["student"]),
        "features": Path(local_run["outputs"]["features"]),
        "items": run_dir / "ingest" / "items",
        "judgments": run_dir / "ingest" / "judgments",
    }


def cfg(**gate: object) -> Config:
    return load_config(TINY_CONFIG, overrides={"gate": gate} if gate else None)


@pytest.fixture(scope="module")
def backwards_student(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A student distilled from every target turned upside down: it ranks relevance backwards."""
    out = tmp_path_factory.mktemp("backwards")
    table = pq.read_table(inputs["features"] / "student_features.parquet")
    flipped = [list(reversed(t)) for t in table.column("target").to_pylist()]
    column = pa.array(flipped, type=table.schema.field("target").type)
    table = table.set_column(table.schema.get_field_index("target"), "target", column)
    pq.write_table(table, out / "student_features.parquet")
    train_student(out / "student_features.parquet", inputs["features"] / "item_store",
                  out / "student", cfg())  # fmt: skip
    return out / "student"


def test_the_held_out_set_is_the_test_split_of_the_human_labels(inputs: dict[str, Path]) -> None:
    held_out = held_out_judgments(inputs["judgments"], cfg())
    all_queries = set(pq.read_table(inputs["judgments"]).column("query").to_pylist())
    assert 0 < held_out["query"].nunique() < len(all_queries)
    features = pq.read_table(inputs["features"] / "student_features.parquet").to_pandas()
    trained_on = set(features.loc[features["split"] == "train", "query"])
    assert not trained_on & set(held_out["query"])  # neither model trained on these


def test_a_student_against_itself_passes_with_no_difference(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    decision = gate(inputs["student"], inputs["student"], inputs["items"], inputs["judgments"],
                    tmp_path, cfg())  # fmt: skip
    assert decision["passed"] and decision["delta"] == 0
    assert decision["candidate"] == decision["serving"]
    assert json.loads((tmp_path / "gate.json").read_text()) == decision
    assert gate_passed(tmp_path)


def test_a_backwards_candidate_is_held_and_the_good_one_replaces_it(
    inputs: dict[str, Path], backwards_student: Path, tmp_path: Path
) -> None:
    args = (inputs["items"], inputs["judgments"])
    worse = gate(backwards_student, inputs["student"], *args, tmp_path / "worse", cfg())
    assert not worse["passed"] and worse["delta"] < 0 and not gate_passed(tmp_path / "worse")
    better = gate(inputs["student"], backwards_student, *args, tmp_path / "better", cfg())
    assert better["passed"] and better["delta"] == pytest.approx(-worse["delta"])
    tolerant = gate(backwards_student, inputs["student"], *args, tmp_path / "tolerant",
                    cfg(max_regression=1.0))  # fmt: skip
    assert tolerant["passed"]  # the tolerance is what decides, not a hidden threshold


def test_the_first_model_deploys_on_its_own(inputs: dict[str, Path], tmp_path: Path) -> None:
    decision = gate(inputs["student"], None, inputs["items"], inputs["judgments"], tmp_path, cfg())
    assert decision["passed"] and decision["serving"] is None
    assert np.isfinite(decision["candidate"])


def test_too_few_held_out_queries_keep_the_gate_closed(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    decision = gate(inputs["student"], inputs["student"], inputs["items"], inputs["judgments"],
                    tmp_path, cfg(min_queries=100_000))  # fmt: skip
    assert not decision["passed"] and "min_queries" in decision["reason"]


def test_an_unknown_metric_is_one_line_from_the_cli(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(TINY_CONFIG.read_text() + "gate:\n  metric: ndcg_at_seven\n")
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "student", "gate",
         "--candidate", str(inputs["student"]), "--items", str(inputs["items"]),
         "--judgments", str(inputs["judgments"]),
         "--serving", "none", "--out", str(tmp_path / "g"), "--config", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "ndcg_at_seven" in proc.stderr and "Traceback" not in proc.stderr
