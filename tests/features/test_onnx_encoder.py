"""The ONNX Runtime encoder: the same vectors as PyTorch, exported once, never trusted blindly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from searchrel.config import MINILM
from searchrel.features import onnx_encoder
from searchrel.features.embedder import USE_MULTILINGUAL, Embedder

pytestmark = pytest.mark.slow

TEXTS = [
    "vase",
    "red leather ankle boots with a low heel",
    "Crème brûlée ramekins 日本語",
    "",
    " ".join(["ceramic"] * 400),  # longer than max_seq_length: truncated the same way
    "vase",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx(cache: Path) -> Embedder:
    return Embedder(MINILM, batch_size=4, runtime="onnxruntime", onnx_cache_dir=str(cache))


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder(MINILM, batch_size=4, runtime="torch")


def test_onnx_runtime_gives_pytorchs_vectors_one_at_a_time_and_in_padded_batches(
    onnx: Embedder, torch_embedder: Embedder
) -> None:
    assert (onnx.runtime, torch_embedder.runtime) == ("onnxruntime", "torch")
    expected = torch_embedder.encode(TEXTS)
    np.testing.assert_allclose(onnx.encode(TEXTS), expected, atol=1e-5)  # batches of 4, padded
    for text, vector in zip(TEXTS, expected, strict=True):
        np.testing.assert_allclose(onnx.encode_query(text), vector, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(onnx.encode(TEXTS), axis=1), 1.0, atol=1e-5)


def test_a_shorter_max_seq_length_truncates_as_in_pytorch(
    onnx: Embedder, torch_embedder: Embedder
) -> None:
    long = ["a hand-thrown blue ceramic vase for the mantel with a speckled glaze"]
    full = onnx.encode(long)
    before = [e.model.max_seq_length for e in (onnx, torch_embedder)]
    for e in (onnx, torch_embedder):
        e.model.max_seq_length = 6
    try:
        short = onnx.encode(long)
        np.testing.assert_allclose(short, torch_embedder.encode(long), atol=1e-5)
        assert not np.allclose(short, full, atol=1e-3)
    finally:
        for e, length in zip((onnx, torch_embedder), before, strict=True):
            e.model.max_seq_length = length


def test_the_exported_graph_is_kept_and_loaded_without_exporting_again(
    onnx: Embedder, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs = list(cache.glob("*.onnx"))
    assert len(graphs) == 1 and graphs[0].stat().st_size > 10_000_000
    assert not list(cache.glob(".*.tmp"))
    assert graphs[0].stat().st_mode & 0o777 == 0o644  # readable by a server under another UID

    def no_export(*_: object) -> bytes:
        raise AssertionError("exported again although the cache holds the graph")

    monkeypatch.setattr(onnx_encoder, "_export", no_export)
    again = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(cache))
    assert again.runtime == "onnxruntime"
    np.testing.assert_array_equal(again.encode(TEXTS[:3]), onnx.encode(TEXTS[:3]))


def test_a_corrupt_cached_graph_is_exported_again(
    onnx: Embedder, cache: Path, tmp_path: Path
) -> None:
    graph = next(cache.glob("*.onnx"))
    broken = tmp_path / graph.name
    broken.write_bytes(graph.read_bytes()[:1000])  # a copy cut short
    e = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(tmp_path))
    assert e.runtime == "onnxruntime"
    assert broken.stat().st_size == graph.stat().st_size
    np.testing.assert_allclose(e.encode(TEXTS[:2]), onnx.encode(TEXTS[:2]), atol=1e-6)


def test_auto_falls_back_to_pytorch_with_a_warning_when_the_graph_disagrees(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(onnx_encoder, "TOLERANCE", -1.0)  # any difference at all is too much
    with caplog.at_level(logging.WARNING):
        e = Embedder(MINILM, runtime="auto", onnx_cache_dir=str(cache))
    assert e.runtime == "torch"
    assert "differ from PyTorch" in caplog.text
    with pytest.raises(ValueError, match="embed_runtime onnxruntime: ONNX vectors differ"):
        Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(cache))


def test_auto_falls_back_to_pytorch_when_the_export_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fails(*_: object) -> bytes:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_encoder, "_export", fails)
    with caplog.at_level(logging.WARNING):
        e = Embedder(MINILM, runtime="auto", onnx_cache_dir=str(tmp_path))
    assert e.runtime == "torch" and "ONNX export failed" in caplog.text
    assert not list(tmp_path.iterdir())


def test_a_read_only_cache_directory_still_runs_on_onnx_runtime(
    onnx: Embedder, cache: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory should be")
    e = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(blocked / "onnx"))
    assert e.runtime == "onnxruntime"
    np.testing.assert_allclose(e.encode(TEXTS[:2]), onnx.encode(TEXTS[:2]), atol=1e-6)


def test_the_numpy_encoder_has_no_onnx_graph() -> None:
    with pytest.raises(ValueError, match="has no ONNX graph"):
        Embedder(USE_MULTILINGUAL, runtime="onnxruntime")
    assert Embedder(USE_MULTILINGUAL).runtime == "numpy"


def test_a_model_that_is_not_a_local_directory_is_exported_in_memory_not_cached(
    onnx: Embedder, tmp_path: Path
) -> None:
    """A hub id has no files to key a cache entry on: sharing one entry between hub models
    would load one model's graph for another."""
    encoder = onnx_encoder.OnnxSentenceEncoder(onnx.model, Path("org/model"), tmp_path, 1)
    assert encoder.path is None and not list(tmp_path.iterdir())
    np.testing.assert_allclose(encoder.encode(TEXTS[:2]), onnx.encode(TEXTS[:2]), atol=1e-6)


def test_a_graph_in_a_graph_directory_is_used_and_the_directory_left_as_it_was(
    onnx: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    saved = onnx.save_onnx_graph(bundle)
    assert saved is not None and saved.parent == bundle
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}

    def no_export(*_: object) -> bytes:
        raise AssertionError("exported although the bundle holds the graph")

    monkeypatch.setattr(onnx_encoder, "_export", no_export)
    elsewhere = tmp_path / "empty-cache"
    e = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(elsewhere),
                 onnx_graph_dirs=[bundle])  # fmt: skip
    assert e.runtime == "onnxruntime" and not elsewhere.exists()
    np.testing.assert_array_equal(e.encode(TEXTS[:3]), onnx.encode(TEXTS[:3]))
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


def test_a_bundled_graph_that_disagrees_is_replaced_by_an_export_kept_in_the_cache_not_the_bundle(
    onnx: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    onnx.save_onnx_graph(bundle)
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    real_check, real_export = onnx_encoder.OnnxSentenceEncoder._check, onnx_encoder._export
    calls = {"check": 0, "export": 0}

    def check_fails_once(self: onnx_encoder.OnnxSentenceEncoder) -> float:
        calls["check"] += 1
        if calls["check"] == 1:
            raise onnx_encoder.OnnxUnavailable("ONNX vectors differ from PyTorch (simulated)")
        return real_check(self)

    def counted_export(st: object) -> bytes:
        calls["export"] += 1
        return real_export(st)

    monkeypatch.setattr(onnx_encoder.OnnxSentenceEncoder, "_check", check_fails_once)
    monkeypatch.setattr(onnx_encoder, "_export", counted_export)
    cache = tmp_path / "cache"
    e = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir=str(cache),
                 onnx_graph_dirs=[bundle])  # fmt: skip
    assert e.runtime == "onnxruntime" and calls == {"check": 2, "export": 1}
    assert [p.name for p in cache.glob("*.onnx")] == list(before)  # same name, fresh export
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


def test_an_encoder_with_no_cache_still_writes_its_graph_into_a_bundle(
    onnx: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_memory = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir="")
    bundle = tmp_path / "bundle"
    saved = in_memory.save_onnx_graph(bundle)
    assert saved is not None and saved.stat().st_size > 10_000_000

    def no_export(*_: object) -> bytes:
        raise AssertionError("exported although the bundle holds the graph")

    monkeypatch.setattr(onnx_encoder, "_export", no_export)
    served = Embedder(MINILM, runtime="onnxruntime", onnx_cache_dir="", onnx_graph_dirs=[bundle])
    np.testing.assert_array_equal(served.encode(TEXTS[:3]), onnx.encode(TEXTS[:3]))
