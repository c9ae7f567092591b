"""Fine-tune the teacher on human judgments: (q)LoRA on a K-class cross-encoder.

Training uses the queries of the train split; early stopping watches the validation queries;
test queries are never seen (they score the teacher and the student alike).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from searchrel.config import Config
from searchrel.item_join import join_items
from searchrel.splits import split_of
from searchrel.tables import read_table, write_quarantine
from searchrel.teacher.backbone import autocast, autocast_dtype, default_device
from searchrel.teacher.checkpoint import (
    CHECKPOINT_DIR,
    Trainer,
    TrainState,
    fingerprint,
    load_checkpoint,
    load_trainable,
    save_checkpoint,
    trainable_state,
)
from searchrel.teacher.encoding import encode_pairs, item_texts
from searchrel.teacher.model import TeacherMeta, build_teacher, save_teacher

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed every RNG training touches: same seed, same data and CPU run, same adapters."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train_teacher(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """Train, early-stop on validation queries, save adapters + head; return the summary.

    After every epoch a checkpoint goes to ``out_dir/checkpoint``; a rerun with the same config
    and data resumes from it (``teacher.resume``). A finished run removes it.
    """
    tcfg, levels = cfg.teacher, cfg.data.levels
    seed_everything(tcfg.seed)
    items = read_table(items_path, "items")
    judgments = read_table(judgments_path, "judgments", levels)
    joined = join_items(judgments.table, items.table, "judgments")
    rows = joined.pairs.to_pylist()
    splits = np.array([split_of(r["query"], cfg.data) for r in rows])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError("too few queries to split into train and validation")

    device = default_device()
    amp = autocast_dtype(tcfg.precision, device)
    model, tokenizer = build_teacher(tcfg, levels, device)
    texts = item_texts(tokenizer, joined.items, tcfg.fields, tcfg.field_max_tokens)
    enc = encode_pairs(tokenizer, [r["query"] for r in rows], texts, tcfg.max_length)
    labels = torch.tensor([r["label"] - 1 for r in rows], dtype=torch.long, device=device)
    has_weights = tcfg.use_weights and any(r["weight"] is not None for r in rows)
    weights = torch.tensor(
        [(r["weight"] if r["weight"] is not None else 1.0) if has_weights else 1.0 for r in rows],
        dtype=torch.float32,
        device=device,
    )

    def batch_inputs(idx: np.ndarray) -> dict[str, torch.Tensor]:
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=tcfg.learning_rate,
        weight_decay=tcfg.weight_decay,
    )
    steps_per_epoch = -(-len(train_idx) // tcfg.batch_size)
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=tcfg.learning_rate,
            total_steps=steps_per_epoch * tcfg.epochs,
            pct_start=0.1,
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        rng=np.random.default_rng(tcfg.seed),
    )
    ckpt_dir, key = out_dir / CHECKPOINT_DIR, fingerprint(cfg, items_path, judgments_path)
    state = (load_checkpoint(ckpt_dir, trainer, key) if tcfg.resume else None) or TrainState()
    resumed_from = state.epoch
    started = time.perf_counter()
    while state.epoch < tcfg.epochs and not state.stopped:
        bar = tqdm(
            _batches(len(train_idx), tcfg.batch_size, trainer.rng),
            desc=f"teacher epoch {state.epoch + 1}/{tcfg.epochs}",
            unit="batch",
        )
        train_loss = _train_epoch(trainer, bar, train_idx, batch_inputs, labels, weights, amp)
        val_loss, val_acc = _evaluate_loss(
            model, batch_inputs, labels, val_idx, tcfg.batch_size, device, amp
        )
        state.epoch += 1
        state.history.append(
            {
                "epoch": state.epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_acc": val_acc,
            }
        )
        log.info("epoch %d: %s", state.epoch, state.history[-1])
        if val_loss < state.best_loss - 1e-4:
            state.best_loss, state.bad_epochs = val_loss, 0
            state.best_state = trainable_state(model)
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= tcfg.patience:
                log.info("early stop after epoch %d", state.epoch)
                state.stopped = True
        save_checkpoint(ckpt_dir, trainer, state, key)
    if state.best_state is not None:
        load_trainable(model, state.best_state)

    meta = TeacherMeta(
        base_model=tcfg.base_model,
        levels=levels,
        fields=list(tcfg.fields),
        field_max_tokens=tcfg.field_max_tokens,
        max_length=tcfg.max_length,
        quantize=tcfg.quantize,
        precision=tcfg.precision,
        history=state.history,
    )
    meta = save_teacher(model, tokenizer, meta, out_dir)
    # The run is whole: optimizer state and RNGs would only weigh down the teacher artifact
    # that labeling jobs download.
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    quarantine = [
        q for q in (items.quarantine, judgments.quarantine, joined.quarantine) if q.num_rows
    ]
    if quarantine:
        import pyarrow as pa

        write_quarantine(pa.concat_tables(quarantine), out_dir / "quarantine.parquet")
    summary = {
        "stage": "teacher-train",
        "teacher_version": meta.version,
        "base_model": tcfg.base_model,
        "levels": levels,
        "train_pairs": len(train_idx),
        "val_pairs": len(val_idx),
        "epochs_run": len(state.history),
        "resumed_from_epoch": resumed_from,
        "best_val_loss": state.best_loss,
        "history": state.history,
        "seconds": round(time.perf_counter() - started, 1),
        "inputs": {"items": items.summary(), "judgments": judgments.summary()},
        "unknown_items": joined.quarantine.num_rows,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _train_epoch(
    trainer: Trainer,
    batches: Any,
    train_idx: np.ndarray,
    batch_inputs: Any,
    labels: torch.Tensor,
    weights: torch.Tensor,
    amp: torch.dtype | None,
) -> float:
    """One pass over the training pairs (mixed precision, clipped grads); the mean loss."""
    model, optimizer, scaler = trainer.model, trainer.optimizer, trainer.scaler
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total, seen = 0.0, 0
    for b in batches:
        idx = train_idx[b]
        with autocast(labels.device, amp):
            logits = model(**batch_inputs(idx)).logits.float()
        loss_each = torch.nn.functional.cross_entropy(logits, labels[idx], reduction="none")
        w = weights[idx]
        loss = (loss_each * w).sum() / w.sum()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients (a no-op unless fp16)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        scaler.step(optimizer)
        scaler.update()
        trainer.scheduler.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        batches.set_postfix(loss=f"{total / seen:.3f}")
    return total / seen


@torch.inference_mode()
def _evaluate_loss(
    model: torch.nn.Module,
    batch_inputs: Any,
    labels: torch.Tensor,
    idx: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: torch.dtype | None,
) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for start in range(0, len(idx), batch_size):
        b = idx[start : start + batch_size]
        with autocast(device, amp):
            logits = model(**batch_inputs(b)).logits.float()
        total += float(torch.nn.functional.cross_entropy(logits, labels[b], reduction="sum"))
        correct += int((logits.argmax(-1) == labels[b]).sum())
    return total / len(idx), correct / len(idx)
