"""Repeatable and restartable: same seed, same adapters; an interrupted run resumes exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import searchrel.teacher.train as train_module
from searchrel.config import Config
from searchrel.teacher.checkpoint import CHECKPOINT_DIR, load_trainable, save_checkpoint
from searchrel.teacher.train import train_teacher

pytestmark = pytest.mark.slow


def _adapters(teacher_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(teacher_dir / "adapter" / "adapter_model.safetensors")


def test_two_runs_with_the_same_seed_give_identical_adapters(
    tmp_path: Path, toy_tables: tuple[Path, Path], llama_config: Callable[..., Config]
) -> None:
    cfg = llama_config(epochs=1, lora_dropout=0.1)
    first = train_teacher(*toy_tables, tmp_path / "a", cfg)
    second = train_teacher(*toy_tables, tmp_path / "b", cfg)
    assert first["history"] == second["history"]
    a, b = _adapters(tmp_path / "a"), _adapters(tmp_path / "b")
    assert a.keys() == b.keys() and any("lora_A" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    train_teacher(*toy_tables, tmp_path / "c", llama_config(epochs=1, lora_dropout=0.1, seed=14))
    assert not all(torch.equal(a[k], v) for k, v in _adapters(tmp_path / "c").items())


def test_a_run_interrupted_after_epoch_one_resumes_to_the_adapters_of_an_uninterrupted_run(
    tmp_path: Path,
    toy_tables: tuple[Path, Path],
    llama_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = llama_config(epochs=2, lora_dropout=0.1)  # dropout: the RNG must resume too
    whole = train_teacher(*toy_tables, tmp_path / "whole", cfg)
    assert whole["resumed_from_epoch"] == 0

    def save_then_die(*args: object, **kwargs: object) -> None:
        save_checkpoint(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt("killed after the first checkpoint")

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(*toy_tables, tmp_path / "restarted", cfg)
    assert (tmp_path / "restarted" / CHECKPOINT_DIR / "state.json").is_file()
    assert not (tmp_path / "restarted" / "teacher.json").exists()
    monkeypatch.undo()

    resumed = train_teacher(*toy_tables, tmp_path / "restarted", cfg)
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["history"] == whole["history"]
    a, b = _adapters(tmp_path / "whole"), _adapters(tmp_path / "restarted")
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5)
    assert resumed["teacher_version"] == whole["teacher_version"]

    # A checkpoint from another config is not resumed: the run starts afresh.
    changed = train_teacher(*toy_tables, tmp_path / "restarted", llama_config(epochs=2, seed=7))
    assert changed["resumed_from_epoch"] == 0


def test_a_checkpoint_missing_a_trainable_weight_is_refused_not_half_loaded() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)  # the frozen base: never in a checkpoint
    saved = {n: p.detach().clone() + 1 for n, p in model.named_parameters() if p.requires_grad}
    load_trainable(model, saved)  # the frozen weights' absence is expected
    torch.testing.assert_close(model[1].weight, saved["1.weight"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"lacks trainable weights: \['1.bias'\]"):
        load_trainable(model, {"1.weight": saved["1.weight"] + 1})
    for name, param in model.named_parameters():  # refused before anything was loaded
        torch.testing.assert_close(param, before[name])
    with pytest.raises(ValueError, match="does not have"):
        load_trainable(model, {**saved, "2.weight": saved["1.weight"]})
