"""The student bundle carries the query encoder's ONNX graph: a new server pod loads it and
does not pay an export (a pod's home directory, the usual cache, starts empty)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from searchrel.config import FeatureConfig, ServeConfig
from searchrel.features import onnx_encoder
from searchrel.serving.model import StudentModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU PyTorch encodes queries"),
]


def test_the_server_runs_the_bundles_query_encoder_graph_without_exporting(
    local_run: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    student = Path(local_run["outputs"]["student"])
    graphs = list((student / "query_encoder").glob("*.onnx"))
    assert len(graphs) == 1
    # It came from the features step (beside its item store), and is in the bundle once.
    features = Path(local_run["outputs"]["features"])
    assert [g.name for g in (features / "item_store" / "query_encoder").glob("*.onnx")] == [
        graphs[0].name
    ]
    assert not (student / "item_store" / "query_encoder").exists()

    def no_export(*_: object) -> bytes:
        raise AssertionError("the server exported although the bundle holds the graph")

    monkeypatch.setattr(onnx_encoder, "_export", no_export)
    empty_cache = tmp_path / "cache"
    model = StudentModel(student, ServeConfig(), FeatureConfig(onnx_cache_dir=str(empty_cache)))
    assert model.load()
    assert model.embedder.runtime == "onnxruntime" and not empty_cache.exists()
    ids = pq.read_table(student / "item_store" / "item_features.parquet").column("item_id")
    request = {
        "instances": [{"query": "a query no cache has seen", "item_ids": ids[:3].to_pylist()}]
    }
    reply = asyncio.run(model.predict(model.preprocess(request)))
    assert len(reply["predictions"][0]["scores"]) == 3


def test_no_graph_is_bundled_where_the_server_would_not_run_one(tmp_path: Path) -> None:
    from searchrel.config import load_config
    from searchrel.features.embedder import USE_MULTILINGUAL
    from searchrel.student.model import BUNDLE_ENCODER_DIR
    from searchrel.student.train import bundle_query_encoder

    torch_cfg = load_config(overrides={"features": {"embed_runtime": "torch"}})
    assert bundle_query_encoder(torch_cfg, torch_cfg.features.embedder, tmp_path) is None
    assert bundle_query_encoder(load_config(), USE_MULTILINGUAL, tmp_path) is None
    assert not (tmp_path / BUNDLE_ENCODER_DIR).exists()


def test_the_student_step_copies_the_features_steps_graph_without_loading_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from searchrel.config import load_config
    from searchrel.features.embedder import Embedder
    from searchrel.student.model import BUNDLE_ENCODER_DIR
    from searchrel.student.train import bundle_query_encoder

    def no_load(*_: object, **__: object) -> Embedder:
        raise AssertionError("the encoder was loaded although the features step wrote its graph")

    monkeypatch.setattr(Embedder, "from_config", no_load)
    built = tmp_path / "item_store" / "query_encoder"
    built.mkdir(parents=True)
    (built / "abc123.onnx").write_bytes(b"graph bytes")
    cfg = load_config()
    bundled = bundle_query_encoder(cfg, cfg.features.embedder, tmp_path / "bundle", built)
    assert bundled == tmp_path / "bundle" / BUNDLE_ENCODER_DIR / "abc123.onnx"
    assert bundled.read_bytes() == b"graph bytes"
