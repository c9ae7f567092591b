"""The whole loop as a KFP pipeline under kfp.local (SubprocessRunner), on a tiny slice."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from searchrel.config import LabelConfig
from searchrel.images import resolve_images
from searchrel.pipelines.relevance_loop import build_pipeline, compile_pipeline
from searchrel.tables import read_table

pytestmark = pytest.mark.slow


def test_local_run_produces_a_servable_student_and_metrics_for_both_models(local_run: dict) -> None:
    outputs = {name: Path(path) for name, path in local_run["outputs"].items()}
    student = outputs["student"]
    assert (student / "student.pt2").is_file()
    assert (student / "student.json").is_file()
    assert (student / "item_store" / "item_features.parquet").is_file()
    for role in ("teacher_metrics", "student_metrics"):
        metrics = json.loads((outputs[role] / "metrics.json").read_text())
        assert metrics["split"] == "test"
        assert metrics["n"] > 0
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert len(metrics["confusion_matrix"]) == 5
        assert (outputs[role] / "confusion_matrix.png").stat().st_size > 0
        # The same numbers reach KFP's Metrics artifact.
        assert local_run["metrics"][role]["accuracy"] == pytest.approx(metrics["accuracy"])


def test_teacher_labels_cover_every_distinct_logged_pair(
    local_run: dict, tiny_source: Path
) -> None:
    features_dir = Path(local_run["outputs"]["features"])
    rows = read_table(features_dir / "student_features.parquet", "student_features", 5).table
    teacher_rows = rows.filter(pc.equal(rows.column("source"), "teacher"))
    impressions = pq.read_table(tiny_source / "impressions.parquet")
    distinct = {
        (r["query"], r["locale"], r["item_id"])
        for r in impressions.select(["query", "locale", "item_id"]).to_pylist()
    }
    assert teacher_rows.num_rows == len(distinct)
    for target in teacher_rows.column("target").to_pylist()[:50]:
        assert sum(target) == pytest.approx(1.0, abs=1e-3)
        assert len(target) == 5


def test_the_student_trains_on_teacher_and_human_rows_and_holds_out_test_queries(
    local_run: dict,
) -> None:
    features_dir = Path(local_run["outputs"]["features"])
    table = pq.read_table(features_dir / "student_features.parquet")
    splits = {
        (s, q)
        for s, q in zip(
            table.column("split").to_pylist(), table.column("query").to_pylist(), strict=True
        )
    }
    test_queries = {q for s, q in splits if s == "test"}
    train_queries = {q for s, q in splits if s == "train"}
    assert test_queries and train_queries
    assert not test_queries & train_queries
    summary = json.loads((Path(local_run["outputs"]["student"]) / "summary.json").read_text())
    assert summary["train_rows_by_source"]["human"] > 0
    assert summary["train_rows_by_source"]["teacher"] > 0
    assert summary["export_max_abs_diff"] <= 1e-5
    # The test queries' own impressions never reach the items' engagement features.
    features = json.loads((features_dir / "summary.json").read_text())
    assert features["engagement_rows_of_test_queries_left_out"] > 0


def test_compiled_pipeline_uses_the_configured_images(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEARCHREL_IMAGE_REGISTRY", "registry.example.com/team")
    monkeypatch.setenv("SEARCHREL_IMAGE_TAG", "1.2.3")
    out = compile_pipeline(tmp_path / "loop.yaml")
    spec, *_platform = yaml.safe_load_all(Path(out).read_text())
    images = {
        name: executor["container"]["image"]
        for name, executor in spec["deploymentSpec"]["executors"].items()
    }
    expected = resolve_images()
    assert expected.cpu == "registry.example.com/team/searchrel-python:1.2.3"
    assert set(images.values()) == {expected.cpu, expected.gpu}
    # Nothing is pip-installed when a step starts: the image carries searchrel and kfp.
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "pip install" not in " ".join(executor["container"].get("command", []))


def test_building_the_pipeline_twice_gives_the_same_graph() -> None:
    first, second = build_pipeline(), build_pipeline()
    assert first.pipeline_spec == second.pipeline_spec


def test_labeling_fans_out_over_shards_on_gpu_nodes_with_retries(tmp_path: Path) -> None:
    out = compile_pipeline(tmp_path / "loop.yaml", label=LabelConfig(shards=3))
    spec, platform = yaml.safe_load_all(Path(out).read_text())
    loops = [t for name, t in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop")]
    assert len(loops) == 1
    assert json.loads(loops[0]["parameterIterator"]["items"]["raw"]) == [0, 1, 2]
    body = spec["components"][loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert body["label-shard"]["retryPolicy"]["maxRetryCount"] == 2
    collect = spec["root"]["dag"]["tasks"]["label-collect"]
    assert "for-loop" in collect["dependentTasks"][0]  # collects every shard's output
    executors = spec["deploymentSpec"]["executors"]
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for gpu_step in ("exec-label-shard", "exec-teacher-train"):
        resources = executors[gpu_step]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert resources["accelerator"]["resourceCount"] == "1"
        assert kube[gpu_step]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
        assert kube[gpu_step]["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert kube[gpu_step]["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    assert "accelerator" not in executors["exec-build-features"]["container"].get("resources", {})
