"""Per-epoch training checkpoints, so that a restarted teacher run resumes where it stopped.

``out_dir/checkpoint/`` holds the trainable weights (adapters and head), the optimizer, the
scheduler, the grad scaler and every RNG (``tensors.pt``, loaded with ``weights_only``) and the
epoch, history, early-stopping state and a fingerprint of config and data (``state.json``).
A checkpoint is resumed only when its fingerprint matches the run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchrel.config import Config

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
TENSORS_FILE = "tensors.pt"
STATE_FILE = "state.json"
# Settings that do not change what training computes; a change of them still resumes.
NOT_FINGERPRINTED = {"resume", "label_batch_size", "label_batch_tokens"}


@dataclass
class TrainState:
    """Where training stands after a finished epoch."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = float("inf")
    bad_epochs: int = 0
    stopped: bool = False  # early stopping ended the run
    best_state: dict[str, torch.Tensor] | None = None  # trainable weights of the best epoch


@dataclass
class Trainer:
    """The objects whose state a checkpoint carries besides the TrainState."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    rng: np.random.Generator  # the data order


def fingerprint(cfg: Config, *inputs: Path) -> str:
    """A hash of what determines a training run: teacher and data config, input bytes."""
    digest = hashlib.sha256()
    teacher = cfg.teacher.model_dump(exclude=NOT_FINGERPRINTED)
    digest.update(json.dumps([teacher, cfg.data.model_dump()], sort_keys=True).encode())
    for path in inputs:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapters and the head: the only weights that train."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load the adapters and the head; every trainable weight must be in ``state`` (frozen
    base weights are not: strict loading would demand them). Checked before anything is
    loaded, so a refused ``state`` leaves the model as it was: a missing weight would
    otherwise leave a fresh adapter beside a restored optimizer, silently."""
    unexpected = sorted(set(state) - set(model.state_dict()))
    if unexpected:
        raise ValueError(f"checkpoint weights the model does not have: {unexpected[:3]}")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable - set(state))
    if missing:
        raise ValueError(f"checkpoint lacks trainable weights: {missing[:3]}")
    model.load_state_dict(state, strict=False)


def save_checkpoint(directory: Path, trainer: Trainer, state: TrainState, key: str) -> None:
    """Write the checkpoint beside the old one, then swap, so a crash leaves one whole."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    tensors = {
        "model": trainable_state(trainer.model),
        "best": state.best_state,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": cuda,
    }
    torch.save(tensors, tmp / TENSORS_FILE)
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    meta = {
        "fingerprint": key,
        "epoch": state.epoch,
        "history": state.history,
        "best_loss": state.best_loss,
        "bad_epochs": state.bad_epochs,
        "stopped": state.stopped,
        "python_rng": random.getstate(),
        "numpy_rng": numpy_state,
        "data_rng": trainer.rng.bit_generator.state,
    }
    (tmp / STATE_FILE).write_text(json.dumps(meta), encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def load_checkpoint(directory: Path, trainer: Trainer, key: str) -> TrainState | None:
    """Restore the trainer from a checkpoint of the same run; None when there is none."""
    if not (directory / STATE_FILE).is_file():
        return None
    meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if meta["fingerprint"] != key:
        log.warning("%s was written by another config or data: starting afresh", directory)
        return None
    tensors: dict[str, Any] = torch.load(
        directory / TENSORS_FILE, map_location="cpu", weights_only=True
    )
    try:
        load_trainable(trainer.model, tensors["model"])
    except ValueError as exc:  # weights of another layout (a library's renamed modules)
        log.warning("%s does not fit this model (%s): starting afresh", directory, exc)
        return None
    trainer.optimizer.load_state_dict(tensors["optimizer"])
    trainer.scheduler.load_state_dict(tensors["scheduler"])
    if tensors["scaler"]:  # empty when fp16 (the only user of a scaler) is off
        trainer.scaler.load_state_dict(tensors["scaler"])
    torch.set_rng_state(tensors["torch_rng"])
    if tensors["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda_rng"])
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = meta["numpy_rng"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    trainer.rng.bit_generator.state = meta["data_rng"]
    log.info("resuming the teacher after epoch %d from %s", meta["epoch"], directory)
    return TrainState(
        epoch=meta["epoch"],
        history=meta["history"],
        best_loss=meta["best_loss"],
        bad_epochs=meta["bad_epochs"],
        stopped=meta["stopped"],
        best_state=tensors["best"],
    )
